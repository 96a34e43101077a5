"""Curve banks: full-length learning curves of a study's search space, for replaying searches without training.

Configurations are drawn quasi-randomly (a scrambled Sobol sequence over the
space's parameters, log scales respected, integers and categories as equal
cells) and trained to the study's full epochs with no pruning, through msup's
own `Trainer`, in one long-lived process per worker (importing torch once).
Every ``--seeds-every``-th configuration is also trained with training seeds
1 and 2, so the seed-to-seed spread is measured on the same configurations.

A bank is a folder of Parquet pieces (``part-*.parquet``), one row per
(configuration, seed) run: the sampled values, the three sizes and the dense
size, per-epoch ``val_acc``, ``train_loss`` and ``epoch_s`` (lists), the final
test accuracy, and provenance (msup commit, torch version, a hash of the
resolved training config). A piece is written every ``--piece`` runs, so an
interrupted recording loses at most that many runs, and a second call with the
same arguments trains only what is missing. Asking for more configurations
later extends the same Sobol sequence.

    python benchmarks/curve_bank.py studies/digits.yaml --configs 3000 --workers 2
    python benchmarks/curve_bank.py studies/mnist5k-conv.yaml --configs 600 --workers 2 --out benchmarks/banks/mnist5k-conv

Record with the cores to themselves: the epoch times feed the replay's clock.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
BANKS = ROOT / "benchmarks" / "banks"
EXTRA_SEEDS = (1, 2)
CURVE_COLUMNS = ("val_acc", "train_loss", "epoch_s")


def sobol_values(space: Any, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """The first ``count`` configurations of the space's scrambled Sobol sequence, as `SearchSpace.sample` makes them."""
    import optuna
    from scipy.stats import qmc

    axes = unit_axes(space)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a count that is not a power of 2 loses some balance, not correctness
        points = qmc.Sobol(d=len(axes), scramble=True, seed=seed).random(count)
    return [space.sample(optuna.trial.FixedTrial({name: cast(u) for (name, cast), u in zip(axes, point)}))
            for point in points]


def unit_axes(space: Any) -> list[tuple[str, Any]]:
    """One (name, map from [0, 1) to a value) per sampled parameter; ``coat_keep`` once per inner coat."""
    axes = []
    for param in space.params:
        if param.kind == "fixed":
            continue
        names = [f"coat_keep_{i}" for i in range(2, space.max_coats + 1)] if param.name == "coat_keep" else [param.name]
        axes += [(name, _from_unit(param)) for name in names]
    return axes


def _from_unit(param: Any) -> Any:
    if param.kind == "categorical":
        choices = param.choices
        return lambda u: choices[min(int(u * len(choices)), len(choices) - 1)]
    low, high = float(param.low), float(param.high)
    if param.kind == "int":
        cells = int(high - low) + 1
        return lambda u: int(low) + min(int(u * cells), cells - 1)

    def to_float(u: float) -> float:
        value = math.exp(math.log(low) + u * (math.log(high) - math.log(low))) if param.log else low + u * (high - low)
        if param.step:
            value = low + round((value - low) / param.step) * param.step
        return min(max(value, low), high)
    return to_float


def jobs(count: int, seeds_every: int) -> list[tuple[int, int]]:
    """(configuration, training seed) runs: seed 0 for all, `EXTRA_SEEDS` for every ``seeds_every``-th."""
    runs = [(index, 0) for index in range(count)]
    runs += [(index, seed) for index in range(0, count, seeds_every) for seed in EXTRA_SEEDS] if seeds_every else []
    return runs


def load_bank(folder: str | Path) -> pd.DataFrame:
    """Every run of a bank, one row per (configuration, seed); ``values`` decoded into a dict."""
    parts = sorted(Path(folder).glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"{folder}: no bank pieces (part-*.parquet)")
    bank = pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True)
    bank = bank.drop_duplicates(["config", "seed"], keep="first").sort_values(["config", "seed"], ignore_index=True)
    bank["values"] = bank["values"].map(json.loads)
    return bank


# --- recording: one long-lived worker process per core --------------------------------------------------


_STUDY: Any = None


def _start_worker(study_path: str) -> None:
    global _STUDY
    import torch

    from msup.search.config.preflight import load_study_config

    torch.set_num_threads(1)
    _STUDY = load_study_config(study_path)


def train_run(job: tuple[int, int, dict[str, Any]]) -> dict[str, Any]:
    """Train one configuration to its full epochs; a failure (diverged loss) is a row with its ``error``."""
    from msup.artifact import save_model
    from msup.errors import InputError, RunError
    from msup.sizes import SizeCache
    from msup.train import Trainer

    index, seed, values = job
    train = _STUDY.train_config({**values, "runtime.seed": seed})
    row: dict[str, Any] = {"config": index, "seed": seed, "values": json.dumps(values, sort_keys=True),
                           **SizeCache().sizes(train), "train_hash": config_hash(train.to_dict()),
                           **{name: [] for name in CURVE_COLUMNS}, "error": ""}
    start = time.perf_counter()
    try:
        trainer = Trainer(train)
        for metrics in trainer.epochs():
            for name in CURVE_COLUMNS:
                row[name].append(float(metrics[name]))
        result = trainer.finish()
        with tempfile.TemporaryDirectory() as folder:
            row["size_artifact_bytes"] = save_model(trainer.model, trainer.spec, Path(folder) / "m.msup").file_bytes
        row.update(test_acc=result.test_acc, best_val_acc=result.best_val_acc, best_test_acc=result.best_test_acc)
    except (RunError, InputError) as exc:
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    row["run_s"] = time.perf_counter() - start
    return row


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def provenance() -> dict[str, str]:
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"msup_commit": commit, "torch_version": torch.__version__}


def record(study_path: Path, out: Path, count: int, seeds_every: int, workers: int, piece: int, seed: int) -> int:
    """Train every run of the bank not yet in ``out``; returns how many were trained now."""
    from msup.search.config.preflight import load_study_config

    config = load_study_config(study_path)
    values = sobol_values(config.space, count, seed)
    done: set[tuple[int, int]] = set()
    if any(out.glob("part-*.parquet")):
        bank = load_bank(out)
        done = set(zip(bank["config"].tolist(), bank["seed"].tolist()))
    todo = [(index, run_seed, values[index]) for index, run_seed in jobs(count, seeds_every)
            if (index, run_seed) not in done]
    out.mkdir(parents=True, exist_ok=True)
    stamp = {**provenance(), "study": study_path.name, "base_hash": config_hash(config.train)}
    print(f"{study_path.name}: {len(todo)} runs to train ({len(done)} in the bank), {workers} workers", flush=True)
    start, finished = time.monotonic(), 0
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_start_worker, initargs=(str(study_path),)) as pool:
        for rows in _pieces(pool.imap_unordered(train_run, todo), piece):
            frame = pd.DataFrame([{**row, **stamp} for row in rows])
            name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}.parquet"
            frame.to_parquet(out / f".{name}", index=False)
            os.replace(out / f".{name}", out / name)  # a reader never sees half a piece
            finished += len(rows)
            rate = finished / (time.monotonic() - start)
            print(f"  {finished}/{len(todo)} runs, {rate * 60:.1f} per minute, "
                  f"{(len(todo) - finished) / rate / 60:.0f} min left", flush=True)
    return finished


def _pieces(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a study file: its training config, space and epochs")
    parser.add_argument("--configs", type=int, default=3000, help="configurations (the first of the Sobol sequence)")
    parser.add_argument("--seeds-every", type=int, default=10,
                        help="every Nth configuration is trained with 3 training seeds (0: none)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="training processes, one core each")
    parser.add_argument("--piece", type=int, default=50, help="runs per Parquet piece")
    parser.add_argument("--seed", type=int, default=0, help="the Sobol sequence's scrambling seed")
    parser.add_argument("--out", type=Path, help="the bank folder (default benchmarks/banks/<study name>)")
    args = parser.parse_args(argv)
    out = args.out or BANKS / args.study.stem
    record(args.study.resolve(), out, args.configs, args.seeds_every, args.workers, args.piece, args.seed)
    bank = load_bank(out)
    print(f"{out}: {len(bank)} runs of {bank['config'].nunique()} configurations, "
          f"{(bank['error'] != '').sum()} failed, {bank['run_s'].sum() / 3600:.2f} CPU-hours")
    return 0


if __name__ == "__main__":
    sys.exit(main())
