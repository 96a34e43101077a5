"""msup as an installed package: one top-level package, its data, and the default study from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from msup.cli.study import DEFAULT_STUDY
from msup.search.config.study import read_study_file

ROOT = Path(__file__).resolve().parents[1]


def test_the_packaged_default_study_is_the_checkouts_digits_study() -> None:
    """msup/resources/digits.yaml is studies/digits.yaml with its training config and search space inline."""
    assert read_study_file(DEFAULT_STUDY).to_dict() == read_study_file(ROOT / "studies" / "digits.yaml").to_dict()


@pytest.mark.slow
def test_the_wheel_runs_the_default_study_from_an_empty_folder(tmp_path: Path) -> None:
    """Build the wheel, install it alone into a scratch venv that sees this environment's packages, dry-run."""
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(dist.glob("msup-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"msup"}
    assert {"msup/resources/digits.yaml", "msup/py.typed"} <= set(names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next(venv.glob("lib/python*/site-packages"))
    # This environment's torch, Ray, ... without installing them twice. A path added by a .pth file has its own
    # .pth files ignored, so the editable msup of this environment stays out of sight.
    (site / "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: this environment's own (editable) msup is visible through that .pth; leave it alone.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", "--ignore-installed", str(wheel)], check=True, capture_output=True, timeout=300)

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import msup; print(msup.__file__)"], cwd=empty,
                           env=env, capture_output=True, text=True, timeout=120)
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    done = subprocess.run([str(venv / "bin" / "msup"), "study", "launch", "--dry-run"], cwd=empty, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("study 'digits' is valid"), done.stdout
