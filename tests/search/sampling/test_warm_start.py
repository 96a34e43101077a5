"""Warm start: an earlier study's finished trials steer a new study's sampler, and stay out of its records."""

from __future__ import annotations

import statistics

import optuna
import pytest
import yaml
from studykit import SPACE, load_trials, msup_env, run_msup, sqlite_url, write_study

from msup.search.sampling.warm_start import WARM_START_ATTR, WarmStart, front_configurations

optuna.logging.set_verbosity(optuna.logging.WARNING)
X = optuna.distributions.FloatDistribution(0.0, 1.0)


def _earlier_trials() -> list[optuna.trial.FrozenTrial]:
    """30 finished trials on x in [0, 1] where accuracy peaks at x = 0.9 (a few pruned, one failed)."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=3))
    for i in range(30):
        trial = study.ask({"x": X})
        x = trial.params["x"]
        state = optuna.trial.TrialState.PRUNED if i % 10 == 9 else optuna.trial.TrialState.COMPLETE
        study.tell(trial, None if state.name == "PRUNED" else [1 - abs(x - 0.9), 1.0], state=state)
    study.tell(study.ask({"x": X}), state=optuna.trial.TrialState.FAIL)
    return study.get_trials()


def _first_draws(sampler: optuna.samplers.BaseSampler, n: int = 8) -> tuple[list[float], optuna.Study]:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    draws = []
    for _ in range(n):
        trial = study.ask({"x": X})
        draws.append(trial.params["x"])
        study.tell(trial, [0.5, 1.0])  # uninformative: what moves the draws is the earlier study
    return draws, study


def test_earlier_trials_steer_tpe_from_its_first_ask_and_are_not_stored():
    earlier = _earlier_trials()
    warm = WarmStart(optuna.samplers.TPESampler(seed=0, n_startup_trials=10), earlier, "earlier")
    assert len(warm.earlier) == 30  # finished ones only: the failed trial teaches nothing
    warm_draws, study = _first_draws(warm)
    cold_draws, _ = _first_draws(optuna.samplers.TPESampler(seed=0, n_startup_trials=10))
    assert statistics.fmean(warm_draws) > 0.75 and statistics.fmean(cold_draws) < 0.65
    assert len(study.trials) == 8  # the earlier trials are shown to the sampler, never written


def test_a_request_for_every_trial_gets_the_studys_own():
    earlier = _earlier_trials()
    warm = WarmStart(optuna.samplers.TPESampler(seed=0), earlier)
    own = earlier[:2]
    assert warm.shown(own, None) == own
    shown = warm.shown(own, [optuna.trial.TrialState.PRUNED])
    assert [t.state.name for t in shown] == ["PRUNED"] * 3 + ["COMPLETE", "COMPLETE"]


def test_the_earlier_front_comes_most_accurate_first_without_dominated_or_repeated_configurations() -> None:
    def done(x: float, accuracy: float, size: float) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(params={"x": x}, distributions={"x": X}, values=[accuracy, size])

    trials = [done(0.1, 0.9, 2.0), done(0.2, 0.8, 1.0), done(0.3, 0.7, 3.0), done(0.1, 0.9, 2.0),
              optuna.trial.create_trial(params={"x": 0.4}, distributions={"x": X},
                                        state=optuna.trial.TrialState.PRUNED)]
    assert front_configurations(trials) == [{"x": 0.1}, {"x": 0.2}]


def test_front_first_can_be_turned_off_and_is_written_back(tmp_path) -> None:
    from msup.search.config.study import parse_study_text
    from msup.search.sampling.warm_start import with_earlier_front

    path = write_study(tmp_path, "later", warm_start={"study": "first", "front_first": False})
    config = parse_study_text(path.read_text(), tmp_path, str(path))
    assert (config.warm_start, config.warm_front_first) == ("first", False)
    assert with_earlier_front(config) is config  # nothing read: the earlier study need not exist for this
    assert config.to_dict()["warm_start"] == {"study": "first", "front_first": False}


@pytest.mark.slow
def test_warm_start_through_the_cli_with_a_resume_and_its_refusals(tmp_path):
    runs = tmp_path / "runs"
    env = msup_env(runs)
    sampler = {"name": "tpe", "seed": 1, "n_startup_trials": 2}
    first = write_study(tmp_path, "first", trials=3, sampler=sampler)
    assert run_msup(["study", "launch", str(first)], env).returncode == 0
    second = write_study(tmp_path, "second", trials=2, sampler=sampler, warm_start="first")
    launched = run_msup(["study", "launch", str(second)], env)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert "warm start from first: its 3 finished trials teach the sampler" in launched.stdout + launched.stderr
    resumed = run_msup(["study", "resume", "second", "--num-samples", "3"], env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    trials = load_trials(sqlite_url(runs / "second"), "second")
    assert len(trials) == 3 and [t.number for t in trials] == [0, 1, 2]  # its own trials only
    assert len(load_trials(sqlite_url(runs / "first"), "first")) == 3  # the earlier study is read, never written
    stored = optuna.load_study(study_name="second", storage=sqlite_url(runs / "second"))
    assert stored.user_attrs[WARM_START_ATTR] == {"study": "first", "finished_trials": 3}
    assert len((runs / "second" / "trials.csv").read_text().strip().splitlines()) == 1 + 3
    written = yaml.safe_load((runs / "second" / "study.yaml").read_text())
    assert written["warm_start"] == "first"
    # The earlier front, trained first: in the written study's enqueue list, so the resume enqueued it once.
    front = front_configurations(load_trials(sqlite_url(runs / "first"), "first"))
    assert written["enqueue"] == front and 1 <= len(front) <= 3
    assert [t.params for t in trials[: len(front)]] == front
    assert [t.user_attrs.get("enqueued") for t in trials] == [*range(len(front)), *[None] * (3 - len(front))]

    other_space = {"parameters": {**SPACE["parameters"], "lr": {"type": "float", "low": 0.01, "high": 0.3, "log": True}}}
    refusals = {
        "space": (write_study(tmp_path, "third", sampler=sampler, space=other_space, warm_start="first"),
                  "warm_start: first: it searched another space (lr is {kind 'float', low 0.01, high 0.3, log True} "
                  "here, {kind 'float', low 0.05, high 0.3, log True} there)"),
        "sampler": (write_study(tmp_path, "fourth", sampler={"name": "random"}, warm_start="first"),
                    "warm_start: first: sampler random cannot use earlier trials (warm starts feed tpe or gp)"),
        "missing": (write_study(tmp_path, "fifth", sampler=sampler, warm_start="nowhere"),
                    "no study 'nowhere'"),
    }
    for path, message in refusals.values():
        refused = run_msup(["study", "launch", str(path)], env)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr[-2000:]
        assert len(refused.stderr.strip().splitlines()) == 1
        assert not (runs / path.stem).exists()
