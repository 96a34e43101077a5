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


def test_coats_at_equal_size_solves_the_sparsities_for_each_target_size():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from coats_at_equal_size import solve_density, sparsities_for
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from msup.config import load_config
    from msup.sizes import inventory, model_size

    inv = inventory(load_config(ROOT / "studies" / "train" / "digits-mlp.yaml").model_spec().build())
    for coats in (1, 2, 3, 4):
        for target in (0.0025, 0.005, 0.01):
            density = solve_density(inv, coats, 0.5, target)
            assert density is not None and 0 < density <= 0.5
            size = model_size(inv, sparsities_for(coats, density, 0.5)).entropy_mib
            assert abs(size - target) * 2**20 < 2  # within 2 bytes: the counts are whole weights
    assert solve_density(inv, 1, 0.5, 0.02) is None  # one coat's entropy size peaks at density 0.5
    assert solve_density(inv, 4, 0.5, 0.001) is None  # below what BatchNorm alone takes


@pytest.mark.slow
def test_coats_at_equal_size_trains_and_tabulates(tmp_path):
    figure = tmp_path / "coats.png"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "coats_at_equal_size.py"), "--sizes", "0.004", "--coats", "1", "2",
         "--seeds", "0", "1", "--set", "optim.epochs=1", "--figure", str(figure)],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| 0.004 |")]
    assert row.count("±") == 2 and figure.stat().st_size > 0


@pytest.mark.parametrize("extra", [[], ["--sampler", "tpe", "--max-history", "5"]])
def test_driver_scale_times_every_call_in_windows_with_optunas_share_apart(tmp_path, extra):
    out = tmp_path / "rows.jsonl"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "driver_scale.py"), "--trials", "120", "--epochs", "3",
                           "--out", str(out), *extra], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["trials"] for r in rows] == ["1-100", "101-120"]
    for r in rows:
        assert 0 < r["sampler_ms"] + r["optuna_ask_ms"] < r["suggest_ms"] and 0 < r["optuna_tell_ms"] < r["complete_ms"]
        assert 0 < r["report_ms"] and r["reports"] > 0
    assert "| 101-120 |" in done.stdout
