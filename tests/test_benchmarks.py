"""The benchmark scripts that need hardware this suite lacks still run: their dry runs, on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_packing_dry_run_measures_each_packing(tmp_path):
    out = tmp_path / "rows.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_packing.py"), "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [(r["model"], r["trials_per_gpu"]) for r in rows] == [("mlp", 1), ("mlp", 2)]
    assert all(r["epoch_s"] > 0 and r["images_per_s"] > 0 for r in rows)
    assert "| mlp | 2 | off | off |" in done.stdout
