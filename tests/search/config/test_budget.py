"""Compute budgets: the keys, the accounting a crash cannot corrupt, and real studies each kind ends."""

from __future__ import annotations

import json
import time

import optuna
import pytest
import studykit
import yaml
from optuna.trial import TrialState
from studykit import spent_trial_epochs, sqlite_url, write_study

from msup.cli import main
from msup.errors import InputError
from msup.search.config.budget import ComputeBudget, parse_budget_option
from msup.search.config.preflight import load_study_config
from msup.search.state.account import BudgetAccount, Gate
from msup.search.state.keys import CLOCK_ATTR, PRUNED_ATTR
from msup.search.state.ledger import StudyLedger


def _study() -> optuna.Study:
    return optuna.create_study(directions=["maximize", "minimize"], storage=optuna.storages.InMemoryStorage())


def _start(study: optuna.Study, ledger: StudyLedger, epochs: int = 4):
    trial = study.ask()
    record = ledger.add_new(trial.number, trial._trial_id)
    record.epochs = epochs
    return record


def _account(ledger: StudyLedger, weight: float = 1.0, **limits: float) -> BudgetAccount:
    return BudgetAccount(ComputeBudget(**limits), ledger, weight, lambda record: record.epochs or 0)


@pytest.mark.parametrize("budget, problem", [
    ({"trial_epochs": 0}, "budget.trial_epochs: 0 must be >= 1"),
    ({"trial_epochs": 2.5}, "budget.trial_epochs: 2.5 must be an integer"),
    ({"hours": -1}, "budget.hours: -1 must be > 0"),
    ({"trial_hours": "two"}, "budget.trial_hours: 'two' must be a finite number"),
    ({"gpu_hours": 3}, "budget.gpu_hours: unknown key; did you mean hours?"),
    ({}, "budget: must set one or more of trial_epochs, trial_hours, hours"),
    (1200, "budget: 1200 must be a mapping of keys to values"),
])
def test_a_bad_budget_is_one_line_and_exit_2(tmp_path, capsys, budget, problem):
    path = write_study(tmp_path, "bad", budget=budget)
    with pytest.raises(InputError) as error:
        load_study_config(path)
    assert str(error.value) == f"{path}: {problem}"
    assert main(["study", "launch", str(path), "--runs-dir", str(tmp_path / "runs"), "--dry-run"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and problem in error
    assert not (tmp_path / "runs").exists()


def test_a_budget_needs_no_trial_count_and_the_first_limit_reached_ends_sampling(tmp_path, capsys):
    assert load_study_config(write_study(tmp_path, "open", trials=None, budget={"trial_epochs": 12})).trials is None
    assert load_study_config(write_study(tmp_path, "both", trials=5, budget={"hours": 1})).trials == 5
    assert load_study_config(write_study(tmp_path, "plain", trials=None)).trials == 20  # no budget: 20 trials
    path = write_study(tmp_path, "cli", trials=None, budget={"trial_epochs": 12, "hours": 1})
    assert main(["study", "launch", str(path), "--budget", "hours=2", "--dry-run"]) == 0
    assert "budget 12 trial-epochs or 2 hours" in capsys.readouterr().out  # --budget replaces the kinds it names
    with pytest.raises(InputError, match="--budget 'epochs': expected KIND=VALUE"):
        parse_budget_option(["epochs"])
    with pytest.raises(InputError, match="below the study's budget of 12 trial-epochs"):
        ComputeBudget(trial_epochs=12).extended(ComputeBudget(trial_epochs=10))


def test_new_trials_wait_for_the_epochs_running_trials_reserve_and_a_pruned_one_frees_its_own():
    study = _study()
    ledger = StudyLedger(study, "size_entropy_mib")
    account = _account(ledger, trial_epochs=10)
    a, b = _start(study, ledger), _start(study, ledger)
    assert account.reserved()["trial_epochs"] == 8 and account.gate() is Gate.START  # 8 < 10
    c = _start(study, ledger)
    assert account.gate() is Gate.WAIT  # 12 reserved: the rest of the budget is held
    for epoch in (1, 2):
        ledger.record_epoch(a, epoch, 0.5, final=False, epoch_s=1.0)
    ledger.set_attr(a, PRUNED_ATTR, 2)  # a pruner stopped a: its last 2 epochs are free again
    study.tell(a.number, state=TrialState.PRUNED)
    ledger.set_state(a, TrialState.PRUNED)
    assert account.spent().trial_epochs == 2 and account.reserved()["trial_epochs"] == 8
    assert account.gate() is Gate.WAIT  # 2 spent + 8 reserved reach 10
    for epoch in range(1, 5):
        ledger.record_epoch(b, epoch, 0.6, final=epoch == 4, epoch_s=1.0)
    study.tell(b.number, [0.6, 0.01])
    ledger.set_state(b, TrialState.COMPLETE)
    assert account.gate() is Gate.WAIT  # 6 spent + 4 reserved by c
    ledger.record_epoch(c, 1, 0.3, final=False, epoch_s=1.0)
    study.tell(c.number, state=TrialState.FAIL)
    ledger.set_state(c, TrialState.FAIL)  # c failed after one epoch: 7 spent, nothing reserved
    assert account.gate() is Gate.START
    d = _start(study, ledger)
    for epoch in range(1, 5):
        ledger.record_epoch(d, epoch, 0.7, final=epoch == 4, epoch_s=1.0)
    study.tell(d.number, [0.7, 0.02])
    ledger.set_state(d, TrialState.COMPLETE)
    assert account.spent().trial_epochs == 11 and account.gate() is Gate.FINISHED  # N + T - 1 at most: 10 + 3


def test_spend_is_rebuilt_from_the_storage_and_redone_epochs_are_not_charged():
    study = _study()
    ledger = StudyLedger(study, "size_entropy_mib")
    record = _start(study, ledger)
    for epoch in (1, 2, 3):
        ledger.record_epoch(record, epoch, 0.5, final=False, epoch_s=2.0)
    for epoch in (2, 3, 4):  # resumed from the epoch-1 checkpoint after a crash: 2 and 3 again, then 4
        ledger.record_epoch(record, epoch, 0.5, final=epoch == 4, epoch_s=2.0)
    assert (ledger.spent_epochs, ledger.spent_train_s) == (4, 8.0)
    study.set_user_attr(CLOCK_ATTR, 7200.0)  # two hours of earlier drivers
    rebuilt = StudyLedger(study, "size_entropy_mib")  # a new driver
    assert (rebuilt.spent_epochs, rebuilt.spent_train_s) == (4, 8.0)
    spent = _account(rebuilt, weight=0.25).spent()
    assert spent.trial_hours == pytest.approx(8.0 * 0.25 / 3600)  # a quarter of a GPU for 8 s
    assert 2.0 <= spent.hours < 2.01


def test_a_spent_time_budget_stops_running_trials_and_starts_none():
    study = _study()
    ledger = StudyLedger(study, "size_entropy_mib")
    record = _start(study, ledger)
    ledger.record_epoch(record, 1, 0.5, final=False, epoch_s=1800.0)
    account = _account(ledger, trial_hours=1.0)
    assert account.stop_reason() is None
    assert account.reserved()["trial_hours"] == pytest.approx(1.5)  # 3 epochs left at its own 0.5 h each
    assert account.gate() is Gate.WAIT
    ledger.record_epoch(record, 2, 0.5, final=False, epoch_s=1800.0)
    assert account.stop_reason() == "budget: 1 trial-hours spent" and account.gate() is Gate.FINISHED
    study.set_user_attr(CLOCK_ATTR, 3 * 3600.0)
    late = _account(StudyLedger(study, "size_entropy_mib"), hours=3.0)
    assert late.stop_reason() == "budget: 3 hours spent" and late.gate() is Gate.FINISHED


@pytest.mark.slow
def test_a_trial_epoch_budget_ends_the_study_and_an_extension_continues_it(tmp_path, ray_session, capsys):
    runs, name, epochs = tmp_path / "runs", "epochs", 2
    path = write_study(tmp_path, name, trials=None, epochs=epochs, budget={"trial_epochs": 7})
    assert main(["study", "launch", str(path), "--runs-dir", str(runs)]) == 0
    folder, storage = runs / name, sqlite_url(runs / name)
    assert 7 <= spent_trial_epochs(storage, name) <= 7 + epochs - 1
    table = studykit.assert_consistent(folder, name, len(studykit.load_trials(storage, name))).table
    assert (table["end_time"] >= table["start_time"]).all() and table["train_s"].gt(0).all()
    assert table.loc[table["state"] == "COMPLETE", "stopped_by"].isna().all()
    capsys.readouterr()
    assert main(["study", "status", name, "--runs-dir", str(runs), "--format", "json"]) == 0
    budget = json.loads(capsys.readouterr().out)["budget"]
    assert list(budget) == ["trial_epochs"] and budget["trial_epochs"]["limit"] == 7
    assert budget["trial_epochs"]["spent"] == spent_trial_epochs(storage, name)

    before = {t.number: (t.state, t.values, t.user_attrs["ray_trial_id"]) for t in studykit.load_trials(storage, name)}
    assert main(["study", "resume", name, "--runs-dir", str(runs), "--budget", "trial_epochs=11"]) == 0
    assert 11 <= spent_trial_epochs(storage, name) <= 11 + epochs - 1
    after = {t.number: (t.state, t.values, t.user_attrs["ray_trial_id"]) for t in studykit.load_trials(storage, name)}
    assert {n: after[n] for n in before} == before  # nothing finished ran again
    assert yaml.safe_load((folder / "study.yaml").read_text())["budget"] == {"trial_epochs": 11}
    assert main(["study", "resume", name, "--runs-dir", str(runs), "--budget", "trial_epochs=5"]) == 2
    assert "below the study's budget of 11 trial-epochs" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["trial_hours", "hours"])
def test_a_time_budget_stops_the_trials_running_when_it_is_spent(tmp_path, ray_session, kind):
    """Epochs of 0.1-0.5 s against a budget of 4 s: whichever trials run out, every one ends accounted for."""
    runs, name = tmp_path / "runs", kind.replace("_", "-")
    path = write_study(tmp_path, name, trials=None, epochs=40, budget={kind: 4 / 3600})
    start = time.monotonic()
    assert main(["study", "launch", str(path), "--runs-dir", str(runs)]) == 0
    storage = sqlite_url(runs / name)
    trials = studykit.load_trials(storage, name)
    table = studykit.assert_consistent(runs / name, name, len(trials)).table
    if kind == "trial_hours":
        assert table["train_s"].sum() >= 4.0
    else:
        study = optuna.load_study(study_name=name, storage=storage)
        assert 4.0 <= study.user_attrs[CLOCK_ATTR] <= time.monotonic() - start
    stopped = table[table["stopped_by"].notna()]
    assert (stopped["state"] == "PRUNED").all() and (stopped["stopped_by"] == f"budget: {4 / 3600:g} "
                                                     f"{'trial-hours' if kind == 'trial_hours' else 'hours'} spent").all()
    assert (table.loc[table["state"] == "COMPLETE", "epochs"] == 40).all()
