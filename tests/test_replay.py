"""The replay harness on the committed digits bank, and the bank recorder on a tiny study: no refactor breaks them."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from curve_bank import load_bank, sobol_values
from replay import BankAnswers, features, replay_seed
from replay_report import report

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "digits.yaml"
BANK = ROOT / "benchmarks" / "banks" / "digits"

ARMS = ["none", "size_aware", "mo_asha_eps", "front_chance"]


@pytest.fixture(scope="module")
def bank() -> pd.DataFrame:
    return load_bank(BANK)


@pytest.fixture(scope="module")
def same(bank) -> pd.DataFrame:
    return replay_seed(("same", str(STUDY), 7, str(BANK), "nearest", ARMS, "all", {"front_chance": {"delta": 0.2}}))


def test_every_arm_trains_the_same_bank_configurations_and_reports_their_curves(same, bank):
    configs = {arm: rows.sort_values("trial")["config"].tolist() for arm, rows in same.groupby("arm")}
    assert set(configs) == set(ARMS) and len(configs["none"]) == 40
    assert configs["size_aware"] == configs["none"] == configs["mo_asha_eps"]  # paired: one random draw per seed
    runs = bank[bank["seed"] == 0].set_index("config")
    for row in same.itertuples():
        run = runs.loc[row.config]
        assert math.isclose(row.size, run["size_entropy_mib"])  # both objectives come from the bank configuration
        assert list(row.curve) == pytest.approx(list(run["val_acc"][: row.epochs]))
        if row.state == "COMPLETE":
            assert row.epochs == 30 and math.isclose(row.final, run["val_acc"][-1])
    none = same[same["arm"] == "none"]
    assert set(none["state"]) <= {"COMPLETE", "FAIL"}
    assert same[same["arm"] == "size_aware"]["epochs"].sum() < none["epochs"].sum()


def test_equal_compute_gives_every_arm_nones_compute_and_the_oracle_only_trains_front_trials():
    frame = replay_seed(("compute", str(STUDY), 7, str(BANK), "forest", ["none", "oracle", "floor1"], "all", {}))
    none = frame[frame["arm"] == "none"]
    budget = none["run_epochs"].iloc[0]
    assert len(none) == 40 and budget == none["epochs"].sum()
    for arm in ("oracle", "floor1"):
        rows = frame[frame["arm"] == arm]
        assert len(rows) > 40 and budget <= rows["run_epochs"].iloc[0] <= budget + 2 * 30  # it kept sampling
        assert rows["run_s"].iloc[0] >= none["run_s"].iloc[0] - 1.0
    oracle = frame[frame["arm"] == "oracle"]
    done = oracle[oracle["state"] == "COMPLETE"]
    assert len(done) >= 3 and (oracle.loc[oracle["state"] != "COMPLETE", "epochs"] <= 1).all()
    for row in done.itertuples():  # it would enter the front of the trials completed before it was judged
        before = done[done["end_s"] <= row.start_s]
        assert not ((before["size"] <= row.size) & (before["final"] >= row.final)).any()


def test_a_warm_start_samples_from_the_earlier_study_at_the_cold_starts_compute():
    frame = replay_seed(("warm", str(STUDY), 7, str(BANK), "forest", ["none", "warm"], "all", {}))
    cold, warm = (frame[frame["arm"] == arm].sort_values("trial") for arm in ("none", "warm"))
    assert len(cold) == 40 and warm["run_epochs"].iloc[0] >= cold["run_epochs"].iloc[0]  # both clocks spent, as compute's
    assert warm["run_s"].iloc[0] >= cold["run_s"].iloc[0] - 1.0
    # Same sampler seed; TPE's 12 random start-up draws are skipped once 40 earlier trials are shown to it.
    assert cold["config"].iloc[:3].tolist() != warm["config"].iloc[:3].tolist()
    assert warm["trial"].min() == 0  # the earlier trials were shown, never stored in the warm study


def test_a_paused_trial_goes_on_from_its_epoch_once_sampling_is_over():
    frame = replay_seed(("same", str(STUDY), 7, str(BANK), "nearest", ["none", "size_aware_pause"], "all", {}))
    pausing = frame[frame["arm"] == "size_aware_pause"]
    first = pausing.drop_duplicates("trial")  # each trial's first stretch
    assert len(first) == 40 and pausing["epochs"].sum() == pausing["run_epochs"].iloc[0]
    paused = pausing[pausing["state"] == "PAUSED"]
    assert len(paused) >= 1
    for row in paused.itertuples():
        (later,) = pausing[(pausing["trial"] == row.trial) & (pausing["state"] != "PAUSED")].itertuples()
        assert later.start_s >= first["start_s"].max()  # taken up when the 40 trials had all started
        assert list(later.curve[: row.epochs]) == list(row.curve)  # from the epoch it was paused at, not from 0
        assert row.epochs + later.epochs == len(later.curve)


def test_snapping_answers_a_bank_configuration_with_itself(bank):
    from msup.search.config.preflight import load_study_config

    answers = BankAnswers(load_study_config(STUDY).space, bank)
    values = answers.runs["values"].iloc[5]
    carried, run = answers.answer(values)
    assert carried == values and run["snap"] == 0.0 and run["config"] == answers.runs["config"].iloc[5]
    (other,), (distance,) = answers.nearest(values, 1, exclude=5)
    assert other != 5 and distance > 0


def test_the_report_has_both_views_with_floor_and_oracle(same, tmp_path):
    same.to_parquet(tmp_path / "same-7.parquet")
    small = tmp_path / "bank"  # the report's bank statistics on 400 runs of the bank, to keep the test short
    small.mkdir()
    for part in sorted(BANK.glob("part-*.parquet"))[:8]:
        shutil.copy(part, small / part.name)
    text = report(STUDY, tmp_path, small, "all", tmp_path / "figures")
    for arm in ("| none |", "| size_aware |", "| floor1 |", "| floor2 |", "| oracle g=1 99% |", "| oracle g=0 100% |"):
        assert arm in text
    assert "Answered by: nearest. Distance to the nearest bank configuration" in text
    assert "front_chance against size_aware, trial-epochs, paired over 1 seeds" in text
    assert "the gap in trial-epochs between size_aware" in text  # and the oracle: the share front_chance closes
    assert (tmp_path / "figures" / "replay-digits-same.png").stat().st_size


@pytest.mark.slow
def test_the_bank_recorder_trains_sobol_draws_and_resumes_without_training_again(tmp_path):
    study = yaml.safe_load(STUDY.read_text())
    study.update(train={"optim": {"epochs": 2}, "runtime": {"device": "cpu"}},
                 search_space=str(ROOT / "search_spaces" / "msup-default.yaml"))
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(study))
    command = [sys.executable, str(ROOT / "benchmarks" / "curve_bank.py"), str(path), "--configs", "3",
               "--seeds-every", "2", "--workers", "1", "--piece", "2", "--out", str(tmp_path / "bank")]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    bank = load_bank(tmp_path / "bank")
    assert sorted(zip(bank["config"], bank["seed"])) == [(0, 0), (0, 1), (0, 2), (1, 0), (2, 0), (2, 1), (2, 2)]
    assert all(len(c) == 2 for c in bank["val_acc"]) and (bank["size_artifact_bytes"] > 0).all()
    assert bank.loc[bank["config"] == 0, "values"].map(str).nunique() == 1  # one configuration, three seeds
    assert len(list((tmp_path / "bank").glob("part-*.parquet"))) == 4
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert "0 runs to train (7 in the bank)" in again.stdout
    from msup.search.config.preflight import load_study_config

    drawn = sobol_values(load_study_config(path).space, 3)
    assert [v for v in bank[bank["seed"] == 0]["values"]] == [json_round(v) for v in drawn]
    assert np.isfinite(bank["test_acc"]).all()


def json_round(values: dict) -> dict:
    import json

    return json.loads(json.dumps(values, sort_keys=True))


def test_the_forest_keeps_the_sampled_values_and_predicts_bank_curves_closely(bank):
    from msup.search.config.preflight import load_study_config

    space = load_study_config(STUDY).space
    answers = BankAnswers(space, bank[bank["config"] < 600], "forest_mean")
    drawn = sobol_values(space, 4, seed=99)  # configurations the bank does not hold
    assert all(answers.answer(values)[0] == values for values in drawn)
    assert len({len(features(space, values)) for values in drawn}) == 1
    errors = [abs(answers.answer(values)[1]["curve"][-1] - curve[-1])
              for values, curve in zip(answers.runs["values"][:50], answers.runs["val_acc"][:50])]
    assert np.mean(errors) < 0.03  # fitted on these: close, though not equal (leaves of two)


def test_what_the_forest_misses_is_the_same_for_a_configuration_and_spreads_as_the_bank_does(bank):
    from replay import ForestMisses

    from msup.search.config.preflight import load_study_config

    space = load_study_config(STUDY).space
    runs = bank[(bank["seed"] == 0) & (bank["config"] < 600)]
    misses = ForestMisses(space, runs)
    assert misses.draw(0.97, "a").tolist() == misses.draw(0.97, "a").tolist()  # paired across arms and replays
    finals = np.array([misses.draw(0.97, str(key))[-1] for key in range(2000)])
    seeds = bank[bank["config"].isin(bank[bank["seed"] > 0]["config"])]
    seed_spread = seeds.assign(final=seeds["val_acc"].map(lambda c: c[-1])).groupby("config")["final"].std().mean()
    assert abs(np.median(finals)) < 0.01 and np.std(finals) > seed_spread  # the seed spread and the forest's error
    answers = BankAnswers(space, runs, "forest")
    mean = BankAnswers(space, runs, "forest_mean")
    drawn = sobol_values(space, 3, seed=5)
    assert all(answers.answer(v)[1]["curve"] != mean.answer(v)[1]["curve"] for v in drawn)
