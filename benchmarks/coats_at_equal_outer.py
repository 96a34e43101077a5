"""The paper's comparison: N = 3 coats against one mask on the same network at the same outer sparsity.

M-Sup's reference recipe keeps edge-popup's outer density and adds sparser inner
coats, so its headline compares networks that share p_1; `coats_at_equal_size.py`
asks the harder question of equal entropy-coded size. This runner trains, for
every width of ``--widths`` and every seed (the same `runtime.seed`: the same
frozen weights, initial scores and batch order in every arm):

- ``dense``: the trained dense network, the ceiling;
- ``N1@0.7`` / ``N3@0.7``: [0.7] against the reference list [0.7, 0.9212, 0.9685];
- ``N1@0.9`` / ``N3@0.9``: [0.9] against [0.9, 0.97373, 0.98949] (the same inner keeps);
- ``N1=N3@0.9``: one mask at the density whose entropy size equals N3@0.9's on that width.

One JSON file per run under ``--out`` (finished runs are skipped, so an
interrupted sweep resumes); a 3-epoch timing pilot per width first, whose
estimate is held against ``--cpu-hours``: past the cap the widest networks get
fewer seeds, and the table says so. ``--arms dense N1@0.7 N1@0.9`` runs the
single-mask arms alone, to choose the widths before any N = 3 run.

    python benchmarks/coats_at_equal_outer.py --train studies/train/mnist1d-conv.yaml \\
        --widths 0.25 0.5 1 2 4 --seeds 0 1 2 3 4 --epochs 100 --out runs/outer-mnist1d \\
        [--workers 2] [--cpu-hours 8] [--figure benchmarks/figures/outer-mnist1d.png]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coats_at_equal_size import solve_density
from size_figure import accuracy_against_size

from msup.config import TrainConfig, load_config
from msup.errors import RunError
from msup.sizes import inventory, model_size

ROOT = Path(__file__).resolve().parents[1]
LISTS: dict[str, list[float] | None] = {
    "dense": None,
    "N1@0.7": [0.7],
    "N3@0.7": [0.7, 0.9212, 0.9685],
    "N1@0.9": [0.9],
    "N3@0.9": [0.9, 0.97373, 0.98949],
    "N1=N3@0.9": None,  # solved per width: one coat at N3@0.9's entropy size
}
MATCHED, MATCHED_TO = "N1=N3@0.9", "N3@0.9"
PILOT_EPOCHS = 3


@dataclass(frozen=True)
class Run:
    width: float
    arm: str
    seed: int

    def path(self, out: Path) -> Path:
        return out / f"width-{self.width:g}" / self.arm / f"seed-{self.seed}.json"


def matched_density(config: TrainConfig) -> float:
    """Density of the single mask whose entropy size equals that of N3@0.9 on ``config``'s network."""
    inv = inventory(config.model_spec().build())
    target = model_size(inv, LISTS[MATCHED_TO]).entropy_mib  # type: ignore[arg-type]  # a list, not dense
    density = solve_density(inv, 1, 1.0, target)  # one coat: no inner share
    assert density is not None, "one coat reaches the three-coat list's size: its outer coat is denser"
    return density


def run_config(base: TrainConfig, run: Run, epochs: int) -> TrainConfig:
    overrides = [f"model.width={run.width}", f"runtime.seed={run.seed}", f"optim.epochs={epochs}"]
    if run.arm == "dense":
        overrides.append("model.dense=true")
    else:
        listed = LISTS[run.arm]
        if listed is None:
            listed = [1 - matched_density(base.with_overrides(overrides))]
        overrides.append(f"mask.sparsities={listed}")
    return base.with_overrides(overrides)


def train_one(base_dict: dict[str, Any], run: Run, epochs: int) -> dict[str, Any]:
    """Train one run in this process (one thread) and return its record."""
    import torch

    from msup.train import train

    torch.set_num_threads(1)
    config = run_config(TrainConfig.from_dict(base_dict), run, epochs)
    record: dict[str, Any] = {"width": run.width, "arm": run.arm, "seed": run.seed, "epochs": epochs,
                              "sparsities": None if config.model.dense else list(config.mask.sparsities)}
    try:
        result = train(config)
    except RunError as exc:  # a diverged run is a result of the arm, not a crash of the sweep
        return {**record, "error": str(exc)}
    return {**record, "test_acc": result.test_acc, "final_val_acc": result.final_val_acc,
            "size_paper_mib": result.size_paper_mib, "size_entropy_mib": result.size_entropy_mib,
            "dense_mib": result.dense_mib, "wall_s": result.wall_s}


def write_atomically(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(record, indent=1))
    os.replace(partial, path)


def pilot_seconds_per_epoch(base: TrainConfig, width: float, out: Path) -> float:
    """Seconds per epoch of the costliest arm (N3@0.7) at ``width``, from a 3-epoch run (kept on disk)."""
    path = out / f"pilot-width-{width:g}.json"
    if not path.exists():
        write_atomically(path, train_one(base.to_dict(), Run(width, "N3@0.7", 0), PILOT_EPOCHS))
    return float(json.loads(path.read_text())["wall_s"]) / PILOT_EPOCHS


def plan(widths: Sequence[float], arms: Sequence[str], seeds: Sequence[int], epoch_s: dict[float, float],
         epochs: int, cap_s: float) -> tuple[list[Run], dict[float, int]]:
    """Runs within ``cap_s`` CPU-seconds: every width gets every seed, or the widest lose seeds first."""
    kept = {w: len(seeds) for w in widths}

    def cost() -> float:
        return sum(epoch_s[w] * epochs * len(arms) * kept[w] for w in widths)

    for width in sorted(widths, reverse=True):
        while cost() > cap_s and kept[width] > 1:
            kept[width] -= 1
    runs = [Run(w, arm, s) for s_index, s in enumerate(seeds) for w in widths for arm in arms if s_index < kept[w]]
    return runs, kept


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=ROOT / "studies" / "train" / "mnist1d-conv.yaml")
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0])
    parser.add_argument("--arms", nargs="+", default=list(LISTS), choices=list(LISTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override the training config, as `msup train --set`")
    parser.add_argument("--out", type=Path, required=True, help="one JSON file per run; finished runs are skipped")
    parser.add_argument("--workers", type=int, default=1, help="runs trained at once, one thread each")
    parser.add_argument("--cpu-hours", type=float, default=8.0, help="cap on the estimated CPU time of the sweep")
    parser.add_argument("--figure", type=Path, help="accuracy against entropy size, every (width, arm) (PNG or SVG)")
    args = parser.parse_args(argv)

    base = load_config(args.train, ["runtime.device=cpu", *args.overrides])
    epoch_s = {w: pilot_seconds_per_epoch(base, w, args.out) for w in args.widths}
    runs, kept = plan(args.widths, args.arms, args.seeds, epoch_s, args.epochs, args.cpu_hours * 3600)
    todo = [r for r in runs if not r.path(args.out).exists()]
    estimate = sum(epoch_s[r.width] * args.epochs for r in todo)
    print(f"{len(runs)} runs, {len(runs) - len(todo)} already done; about {estimate / 3600:.2f} CPU-hours to go "
          f"(pilot s/epoch: {', '.join(f'{w:g}: {s:.3f}' for w, s in epoch_s.items())})", file=sys.stderr)
    with ProcessPoolExecutor(args.workers) as pool:
        futures = {pool.submit(train_one, base.to_dict(), r, args.epochs): r for r in todo}
        for done, future in enumerate(as_completed(futures), start=1):
            run, record = futures[future], future.result()
            write_atomically(run.path(args.out), record)
            accuracy = f"{100 * record['test_acc']:.2f}%" if "test_acc" in record else record["error"]
            print(f"[{done}/{len(todo)}] width {run.width:g} {run.arm} seed {run.seed}: {accuracy}",
                  file=sys.stderr, flush=True)

    records = [json.loads(r.path(args.out).read_text()) for r in runs]
    print(report(records, args, kept))
    if args.figure:
        draw(records, args.figure, base.data.name)
    return 0


def _finished(records: list[dict[str, Any]], width: float, arm: str) -> dict[int, dict[str, Any]]:
    return {r["seed"]: r for r in records if r["width"] == width and r["arm"] == arm and "test_acc" in r}


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "–"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.2f} ± {100 * spread:.2f}"


def _paired(records: list[dict[str, Any]], width: float, better: str, worse: str) -> str:
    """Mean paired difference ``better - worse`` (points) ± its standard error, over shared seeds."""
    a, b = _finished(records, width, better), _finished(records, width, worse)
    diffs = [a[s]["test_acc"] - b[s]["test_acc"] for s in sorted(a.keys() & b.keys())]
    if len(diffs) < 2:
        return "–"
    error = statistics.stdev(diffs) / math.sqrt(len(diffs))
    return f"{100 * statistics.fmean(diffs):+.2f} ± {100 * error:.2f} (n={len(diffs)})"


def _sizes(records: list[dict[str, Any]], width: float, arm: str) -> str:
    done = list(_finished(records, width, arm).values())
    if not done:
        return "–"
    return f"{1024 * done[0]['size_paper_mib']:.2f} / {1024 * done[0]['size_entropy_mib']:.2f}"


def report(records: list[dict[str, Any]], args: argparse.Namespace, kept: dict[float, int]) -> str:
    arms = [a for a in LISTS if a in args.arms]
    lines = [f"{args.train.name}, {args.epochs} epochs; test accuracy (%) mean ± std over seeds; "
             "sizes in KiB as paper / entropy accounting", ""]
    lines.append("| width | seeds | " + " | ".join(arms) + " |")
    lines.append("|---" * (len(arms) + 2) + "|")
    for width in args.widths:
        cells = [_mean_sd([r["test_acc"] for r in _finished(records, width, a).values()]) for a in arms]
        failed = sum(1 for r in records if r["width"] == width and "error" in r)
        note = f"{kept[width]}" + (f", {failed} diverged" if failed else "")
        lines.append(f"| {width:g} | {note} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| width | " + " | ".join(f"{a} size" for a in arms if a != "dense") + " |")
    lines.append("|---" * len(arms) + "|")
    for width in args.widths:
        lines.append(f"| {width:g} | " + " | ".join(_sizes(records, width, a) for a in arms if a != "dense") + " |")
    pairs = [("N3@0.7", "N1@0.7"), ("N3@0.9", "N1@0.9"), ("N3@0.9", MATCHED), ("dense", "N1@0.7"),
             ("dense", "N1@0.9")]
    pairs = [(a, b) for a, b in pairs if a in arms and b in arms]
    if pairs:
        lines += ["", "Paired differences, points, mean ± standard error over seeds:", ""]
        lines.append("| width | " + " | ".join(f"{a} − {b}" for a, b in pairs) + " |")
        lines.append("|---" * (len(pairs) + 1) + "|")
        for width in args.widths:
            lines.append(f"| {width:g} | " + " | ".join(_paired(records, width, a, b) for a, b in pairs) + " |")
    return "\n".join(lines)


def draw(records: list[dict[str, Any]], path: Path, dataset: str) -> None:
    lines = {}
    for arm in LISTS:
        done = [list(_finished(records, width, arm).values()) for width in sorted({r["width"] for r in records})]
        points = [(1024 * d[0]["size_entropy_mib"], 100 * statistics.fmean(r["test_acc"] for r in d)) for d in done if d]
        if arm != "dense" and points:
            lines[arm] = ([s for s, _ in points], [a for _, a in points], None)
    accuracy_against_size(lines, path, f"{dataset}: coats at equal outer sparsity across widths",
                          "model size, entropy bound (KiB); one point per width", "test accuracy (%), mean over seeds")


if __name__ == "__main__":
    sys.exit(main())
