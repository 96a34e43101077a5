"""What the driver costs per call as a study grows: suggest, epoch report, completion.

The real `StudySearcher` and `PruningScheduler` of `studies/digits.yaml` (its
search space, its size-aware pruner) are driven directly, as Ray Tune's
controller calls them, with synthetic accuracy curves instead of training and
no Ray workers: what is timed is the driver's own work and its storage round
trips. The sampler is wrapped so that its own time is shown apart, and so is
the rest of Optuna's own work (``Study.ask``, the parameter writes of
``Trial.suggest_*``, ``Study.tell``: storage round trips msup cannot batch):
what remains of ``suggest`` and of a completion is msup's share.

Prints, per window of trials, the mean milliseconds per call, and writes the
rows as JSON lines when ``--out`` is given:

    python benchmarks/driver_scale.py --sampler random --trials 10000 [--storage postgresql://...]

``--ray`` runs a real Ray Tune study of synthetic trials instead (no torch: a
curve and a short sleep per epoch) through msup's searcher, scheduler,
callbacks and storage on logical CPUs, and compares its wall time with the
theoretical minimum (trained epochs x sleep / concurrency), like Ray's own
bookkeeping release test:

    python benchmarks/driver_scale.py --ray --trials 2000 --epochs 10 --epoch-s 0.1 --concurrency 16
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from pathlib import Path
from typing import Any

import optuna
from controller import Controller
from markdown_table import markdown_table
from optuna.samplers import BaseSampler

from msup.search.config.preflight import load_study_config
from msup.search.config.study import StudyConfig
from msup.search.pruning.rules import parse_pruner
from msup.search.sampling.factory import build_sampler, study_sampler
from msup.search.state.ledger import release_ledgers
from msup.search.state.storage import load_or_create, open_storage

STUDY = Path(__file__).resolve().parents[1] / "studies" / "digits.yaml"
WINDOWS = (0, 100, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000)


class TimedSampler(BaseSampler):
    """Delegates to ``inner`` and adds up the seconds it spends: the sampler's own share of a suggest."""

    def __init__(self, inner: BaseSampler) -> None:
        self.inner, self.seconds = inner, 0.0

    def _timed(self, name: str, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return getattr(self.inner, name)(*args)
        finally:
            self.seconds += time.perf_counter() - start

    def infer_relative_search_space(self, study, trial):  # type: ignore[no-untyped-def]
        return self._timed("infer_relative_search_space", study, trial)

    def sample_relative(self, study, trial, search_space):  # type: ignore[no-untyped-def]
        return self._timed("sample_relative", study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):  # type: ignore[no-untyped-def]
        return self._timed("sample_independent", study, trial, param_name, param_distribution)

    def before_trial(self, study, trial):  # type: ignore[no-untyped-def]
        return self._timed("before_trial", study, trial)

    def after_trial(self, study, trial, state, values):  # type: ignore[no-untyped-def]
        return self._timed("after_trial", study, trial, state, values)


class OptunaClock:
    """Adds up the seconds spent in Optuna's ask, suggest and tell (the sampler's time included)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._patched: list[tuple[type, str, Any]] = []

    def __enter__(self) -> OptunaClock:
        for owner, name in ((optuna.Study, "ask"), (optuna.Study, "tell"), (optuna.Trial, "_suggest")):
            inner = getattr(owner, name)
            self._patched.append((owner, name, inner))
            setattr(owner, name, self._timed(inner))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, inner in self._patched:
            setattr(owner, name, inner)

    def _timed(self, inner: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return timed


@dataclass
class Window:
    start: int
    end: int
    suggest_ms: list[float] = field(default_factory=list)
    sampler_ms: list[float] = field(default_factory=list)
    optuna_ask_ms: list[float] = field(default_factory=list)  # Optuna's ask and parameter writes, sampler excluded
    report_ms: list[float] = field(default_factory=list)
    complete_ms: list[float] = field(default_factory=list)
    optuna_tell_ms: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        mean = lambda xs: sum(xs) / len(xs) if xs else math.nan  # noqa: E731
        suggest, sampler, ask = mean(self.suggest_ms), mean(self.sampler_ms), mean(self.optuna_ask_ms)
        complete, tell = mean(self.complete_ms), mean(self.optuna_tell_ms)
        return {"trials": f"{self.start + 1}-{self.end}", "suggest_ms": suggest, "sampler_ms": sampler,
                "optuna_ask_ms": ask, "msup_suggest_ms": suggest - sampler - ask, "report_ms": mean(self.report_ms),
                "complete_ms": complete, "optuna_tell_ms": tell, "msup_complete_ms": complete - tell,
                "reports": len(self.report_ms)}



def study_of(trials: int, name: str, pruner: dict[str, Any] | None = None) -> StudyConfig:
    """The digits study with ``trials`` trials and no compute budget: the trial count is what is measured."""
    config = dataclass_replace(load_study_config(STUDY, name=name, trials=trials), budget=None)
    return config if pruner is None else dataclass_replace(config, pruner=parse_pruner(pruner, "--pruner", []))

def curve(rng: random.Random, epochs: int) -> list[float]:
    top, speed = rng.uniform(0.2, 0.98), rng.uniform(0.5, 4.0)
    return [max(0.0, min(1.0, top * (1 - math.exp(-e / speed)) + rng.gauss(0, 0.01))) for e in range(1, epochs + 1)]


def run(sampler_name: str, trials: int, epochs: int, storage_url: str | None, seed: int,
        max_history: int | None = None, pruner: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    config = study_of(trials, f"scale-{sampler_name}-{seed}-{int(time.time())}", pruner)
    with tempfile.TemporaryDirectory() as folder:
        url = storage_url or f"sqlite:///{Path(folder) / 'optuna.db'}"
        spec = config.sampler if sampler_name == config.sampler["name"] else {"name": sampler_name}
        spec = spec if max_history is None else {**spec, "max_history": max_history}
        sampler = TimedSampler(build_sampler({**spec, "seed": seed}))
        controller = Controller(config, url, folder, sampler)
        rng = random.Random(seed)
        edges = [w for w in WINDOWS if w < trials] + [trials]
        windows = [Window(a, b) for a, b in zip(edges, edges[1:])]
        with OptunaClock() as optuna_clock:
            for number in range(trials):
                run_trial(controller, sampler, optuna_clock, number, curve(rng, epochs),
                          next(w for w in windows if w.start <= number < w.end))
        if storage_url:  # a shared server: leave nothing behind
            storage = open_storage(url)
            for name in set(optuna.get_all_study_names(storage)) & {config.name, f"{config.name}.pruning"}:
                optuna.delete_study(study_name=name, storage=storage)
        release_ledgers()
    return [w.row() for w in windows]


def run_trial(controller: Controller, sampler: TimedSampler, optuna_clock: OptunaClock,
              number: int, accuracies: list[float], window: Window) -> None:
    """One trial as Ray Tune's controller drives it: suggest, one result per epoch, completion; each call timed."""
    sampled, asked, start = sampler.seconds, optuna_clock.seconds, time.perf_counter()
    config_of = controller.suggest(f"t{number}")
    assert config_of is not None
    window.suggest_ms.append(1e3 * (time.perf_counter() - start))
    window.sampler_ms.append(1e3 * (sampler.seconds - sampled))
    window.optuna_ask_ms.append(1e3 * (optuna_clock.seconds - asked - (sampler.seconds - sampled)))
    result: dict[str, Any] = {}
    for epoch, accuracy in enumerate(accuracies, start=1):
        result = {"epoch": epoch, "val_acc": accuracy, **config_of["sizes"]}
        if epoch == len(accuracies):
            result.update(test_acc=accuracy, best_test_acc=accuracy, wall_s=1.0, size_artifact_bytes=1000)
        start = time.perf_counter()
        going_on = controller.report(f"t{number}", result)
        window.report_ms.append(1e3 * (time.perf_counter() - start))
        if not going_on:
            break
    told, start = optuna_clock.seconds, time.perf_counter()
    controller.complete(f"t{number}", result)
    window.complete_ms.append(1e3 * (time.perf_counter() - start))
    window.optuna_tell_ms.append(1e3 * (optuna_clock.seconds - told))


def synthetic_trial(config: dict[str, Any], epoch_s: float) -> None:
    """A trainable without torch: a synthetic accuracy curve, one short sleep per epoch."""
    import math as m
    import random as r
    import time as t

    from ray import tune

    rng = r.Random(config["optuna_trial"])
    top, speed = rng.uniform(0.2, 0.98), rng.uniform(0.5, 4.0)
    for epoch in range(1, config["epochs"] + 1):
        t.sleep(epoch_s)
        report = {"epoch": epoch, "val_acc": top * (1 - m.exp(-epoch / speed)), **config["sizes"]}
        if epoch == config["epochs"]:
            report.update(test_acc=report["val_acc"], best_test_acc=report["val_acc"], wall_s=epoch * epoch_s,
                          size_artifact_bytes=1000)
        tune.report(report)


def ray_run(trials: int, epochs: int, epoch_s: float, concurrency: int, sampler_name: str) -> dict[str, Any]:
    """A real Ray Tune run through msup's searcher, scheduler, callbacks and storage, on logical CPUs."""
    import ray
    from ray import tune

    from msup.search.execution.runner import start_tuner

    config = study_of(trials, f"ray-scale-{int(time.time())}")
    train = {**config.train, "optim": {**config.train.get("optim", {}), "epochs": epochs}}
    config = dataclass_replace(config, train=train, max_concurrent=concurrency, sampler={"name": sampler_name, "seed": 0})
    ray.init(num_cpus=concurrency, include_dashboard=False, log_to_driver=False, configure_logging=False)
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        url = f"sqlite:///{folder / 'optuna.db'}"
        load_or_create(open_storage(url), config.name, [config.accuracy, config.size], study_sampler(config))
        start = time.perf_counter()
        start_tuner(config, folder, "run-1", url, None, trials, trainable=tune.with_parameters(synthetic_trial, epoch_s=epoch_s))
        wall_s = time.perf_counter() - start
        study = optuna.load_study(study_name=config.name, storage=url)
        trained = sum(len([k for k in t.user_attrs if k.startswith("curve.")]) for t in study.trials)
        states = [t.state.name for t in study.trials]
    ray.shutdown()
    release_ledgers()
    minimum_s = trained * epoch_s / concurrency
    return {"trials": trials, "concurrency": concurrency, "epoch_s": epoch_s, "trained_epochs": trained,
            "wall_s": wall_s, "theoretical_min_s": minimum_s, "ratio": wall_s / minimum_s,
            "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"), "fail": states.count("FAIL")}


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    header = ["trials", "suggest ms", "sampler", "Optuna's ask", "msup's suggest", "epoch report ms", "completion ms",
              "Optuna's tell", "msup's completion"]
    cells = [[r["trials"], f"{r['suggest_ms']:.2f}", f"{r['sampler_ms']:.2f}", f"{r['optuna_ask_ms']:.2f}",
              f"{r['msup_suggest_ms']:.2f}", f"{r['report_ms']:.3f}", f"{r['complete_ms']:.2f}",
              f"{r['optuna_tell_ms']:.2f}", f"{r['msup_complete_ms']:.2f}"] for r in rows]
    return markdown_table(header, cells, [False] + [True] * 8)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sampler", default="random", choices=("random", "nsga2", "tpe", "gp"))
    parser.add_argument("--trials", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--storage", help="an Optuna database URL (default: a fresh SQLite file)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-history", type=int, help="the sampler sees this many recent trials (sampler.max_history)")
    parser.add_argument("--pruner", type=json.loads, help="the study's pruner instead, as JSON: '{\"name\": \"front_chance\"}'")
    parser.add_argument("--out", type=Path, help="append the rows as JSON lines")
    parser.add_argument("--ray", action="store_true", help="a real Ray Tune run of synthetic trials instead")
    parser.add_argument("--epoch-s", type=float, default=0.1, help="--ray: seconds each synthetic epoch sleeps")
    parser.add_argument("--concurrency", type=int, default=16, help="--ray: trials at once (logical CPUs)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.ray:
        row = ray_run(args.trials, args.epochs, args.epoch_s, args.concurrency, args.sampler)
        print(json.dumps(row))
        if args.out:
            with open(args.out, "a", encoding="utf-8") as out:
                out.write(json.dumps({"ray": True, "sampler": args.sampler, **row}) + "\n")
        return 0
    start = time.perf_counter()
    rows = run(args.sampler, args.trials, args.epochs, args.storage, args.seed, args.max_history, args.pruner)
    backend = "postgresql" if args.storage and args.storage.startswith("postgres") else "sqlite"
    history = "" if args.max_history is None else f" (max_history {args.max_history})"
    print(f"{args.sampler}{history} on {backend}, {args.trials} trials x {args.epochs} epochs, "
          f"{time.perf_counter() - start:.0f} s")
    print(markdown(rows))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps({"sampler": args.sampler, "max_history": args.max_history, "backend": backend,
                                      **row}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
