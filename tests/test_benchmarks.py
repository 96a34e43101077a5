"""The benchmark scripts that need hardware this suite lacks still run: their dry runs, on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
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


def test_coats_at_equal_outer_matches_the_single_mask_to_the_three_coat_size_and_plans_within_the_cap():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from coats_at_equal_outer import LISTS, MATCHED_TO, Run, matched_density, plan, run_config
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from msup.config import load_config
    from msup.sizes import inventory, model_size

    base = load_config(ROOT / "studies" / "train" / "mnist1d-conv.yaml")
    for width in (0.25, 1.0):
        config = run_config(base, Run(width, "N1=N3@0.9", 3), 2)
        inv = inventory(config.model_spec().build())
        assert config.runtime.seed == 3 and config.model.width == width and len(config.mask.sparsities) == 1
        matched, target = (model_size(inv, s).entropy_mib for s in (config.mask.sparsities, LISTS[MATCHED_TO]))
        assert abs(matched - target) * 2**20 < 2
        assert 1 - config.mask.sparsities[0] == pytest.approx(matched_density(config), abs=1e-6)
    assert run_config(base, Run(1.0, "dense", 0), 2).model.dense
    seconds = {1.0: 0.1, 4.0: 1.0}  # per epoch: 50 epochs x 2 arms cost 10 s and 100 s per seed
    runs, kept = plan([1.0, 4.0], ["dense", "N1@0.7"], [0, 1, 2, 3, 4], seconds, 50, 300)
    assert kept == {1.0: 5, 4.0: 2} and len(runs) == 2 * 5 + 2 * 2  # the widest network loses seeds first


@pytest.mark.slow
def test_coats_at_equal_outer_resumes_without_training_a_finished_run_again(tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "coats_at_equal_outer.py"), "--widths", "0.25",
               "--arms", "N1@0.7", "N3@0.7", "--seeds", "0", "1", "--epochs", "1", "--out", str(tmp_path)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "4 runs, 0 already done" in first.stderr and len(list(tmp_path.glob("width-0.25/*/seed-*.json"))) == 4
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert "4 runs, 4 already done" in again.stderr and "[1/" not in again.stderr
    assert again.stdout == first.stdout  # the table is read back from the run files
    (row,) = [line for line in again.stdout.splitlines() if line.startswith("| 0.25 |") and "(n=2)" in line]
    assert row.count("±") == 1


@pytest.mark.parametrize("extra", [[], ["--sampler", "tpe", "--max-history", "5"], ["--pruner", '{"name": "front_chance"}']])
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


def test_real_studies_writes_valid_studies_that_differ_only_in_seed_pruner_and_limit(tmp_path):
    from real_studies import ARMS, study_files

    from msup.search.config.preflight import load_study_config

    paths = study_files(ROOT / "studies" / "digits.yaml", [20, 21], tmp_path)
    assert [p.stem for p in paths[:len(ARMS)]] == [f"{arm}-s20" for arm in ARMS] and len(paths) == 2 * len(ARMS)
    shipped = load_study_config(ROOT / "studies" / "digits.yaml")
    for path in paths:
        config = load_study_config(path)  # the study checks it as a launch would: relative paths resolved
        assert config.space == shipped.space and config.train == shipped.train
        assert config.sampler["seed"] == int(path.stem.rsplit("-s", 1)[1])
        if path.stem.split("-s")[0].endswith("_trials"):  # the trials view: none's trial count, no compute limit
            assert config.trials == 40 and config.budget is None
        else:
            assert config.budget.trial_epochs == (400 if "third" in path.stem else 1200)
    pruners = {p.stem: load_study_config(p).pruner for p in paths}
    assert pruners["front_chance-s21"].name == "front_chance" and pruners["front_chance_trials-s21"].name == "front_chance"
    assert pruners["size_aware-s20"] == shipped.pruner == pruners["size_aware_trials-s20"]
    assert pruners["none-s20"].name == "none"

def test_real_studies_saves_both_views_as_the_sim_to_real_checks_read_them(tmp_path):
    from real_studies import compute_outcomes, outcome, search_efficiency_outcomes
    from replay_report import Measure, real_compute, real_outcomes

    from msup.analysis.table import validate_trials

    def study(name: str, rows: list[tuple[str, float, float, int]]) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        validate_trials(pd.DataFrame([
            {"trial": i, "state": state, "coats": 1, "val_acc": acc, "best_val_acc": acc, "test_acc": acc,
             "size_paper_mib": size, "size_entropy_mib": size, "size_artifact_bytes": 1000, "dense_mib": 1.0,
             "epochs": epochs} for i, (state, acc, size, epochs) in enumerate(rows)])).to_csv(folder / "trials.csv", index=False)
        return folder

    none = outcome(study("none-s7", [("COMPLETE", 0.9, 0.1, 10), ("COMPLETE", 0.8, 0.01, 10),
                                     ("COMPLETE", 0.7, 0.05, 10)]))  # the last is dominated
    pruned = outcome(study("front_chance_trials-s7", [("COMPLETE", 0.9, 0.1, 10), ("PRUNED", 0.5, 0.01, 2),
                                                      ("COMPLETE", 0.7, 0.05, 10)]))
    measure = Measure(1.0, 0.1)
    assert (none["arm"], none["seed"], none["epochs"], none["complete"]) == ("none", 7, 30, 3)
    assert [p["accuracy"] for p in none["front"]] == [0.8, 0.9] and none["hv"] == pytest.approx(0.8 + 0.9)  # a decade each
    assert pruned["hv"] == pytest.approx(measure([0.05, 0.1], [0.7, 0.9]))
    saved = tmp_path / "outcomes.json"
    saved.write_text(json.dumps(search_efficiency_outcomes(pd.DataFrame([none, pruned]))))
    real = real_outcomes([saved], measure).set_index("arm")
    assert real.loc["front_chance", "epochs"] == pytest.approx(22 / 30)
    assert real.loc["front_chance", "hv"] == pytest.approx(pruned["hv"] / none["hv"]) and real.loc["none", "hv"] == 1
    third = outcome(study("front_chance_third-s7", [("COMPLETE", 0.9, 0.1, 10)]))
    saved.write_text(json.dumps(compute_outcomes(pd.DataFrame([none, pruned, third]), 30)))
    computed = real_compute([saved]).set_index("arm")  # the trials view is left out; the third is front_chance at 1/3
    assert list(computed.index) == ["none", "front_chance"] and list(computed["share"]) == [1.0, pytest.approx(1 / 3)]
    assert computed.loc["front_chance", "hv"] == pytest.approx(0.9 / 1.7)
