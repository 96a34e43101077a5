"""Real studies of each pruner in the replay's ``trials`` and ``compute`` views, from a study file.

For every seed, the study file is run as shipped but for its sampler seed, its
pruner and its limit. The arms (`ARMS`):

- ``none``: no pruning under the file's ``trial_epochs`` budget, which is its
  trial count at full length (the reference of both views);
- ``trials`` view: ``size_aware_trials`` (the file's own pruner) and
  ``front_chance_trials``, with ``none``'s trial count and no compute budget;
- ``compute`` view: ``size_aware`` and ``front_chance`` with the file's budget,
  and ``front_chance_third`` with a third of it: can a rule reach no
  pruning's final hypervolume with a third of its compute?

Each study is a plain ``msup study launch`` of a generated study file; a study
already in the runs folder is not run again, so arms can be added later
(``--arms``). Prints one row per study (trials, trials trained every epoch,
trial-epochs, hypervolume of its COMPLETE trials against accuracy 0 and the
dense size, and that hypervolume as % of ``none``'s for the seed) and the
mean ± std per arm. For the sim-to-real checks it writes the ``trials`` view
as ``outcomes.json`` in `search_efficiency.py`'s format (``replay_report.py
--real``) and the ``compute`` view as ``compute.json`` (``--real-compute``):

    python benchmarks/real_studies.py --seeds 20 21 22 23 24 --runs runs/real-digits
    python benchmarks/real_studies.py --study studies/mnist5k-conv.yaml --seeds 20 21 22 23 24 \\
        --runs runs/real-mnist5k
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from msup.analysis.pareto import hypervolume, pareto_front
from msup.analysis.table import load_trials

ROOT = Path(__file__).resolve().parents[1]
MSUP = str(Path(sys.executable).parent / "msup")  # the console script of the environment running this
ARMS = ("none", "size_aware_trials", "front_chance_trials", "size_aware", "front_chance", "front_chance_third")
FRONT_CHANCE = {"name": "front_chance"}


def arm_budget(arm: str, budget: int) -> int | None:
    """The trial-epochs an arm may spend given the file's budget; None for the ``trials`` view."""
    return None if arm.endswith("_trials") else budget // 3 if arm.endswith("_third") else budget


def arm_settings(base: dict[str, Any], arm: str) -> dict[str, Any]:
    """The keys an arm changes in the study file: its pruner and its limit."""
    total = int(base["budget"]["trial_epochs"])
    budget = arm_budget(arm, total)
    pruner = {"name": "none"} if arm == "none" else FRONT_CHANCE if arm.startswith("front_chance") else base["pruner"]
    if budget is None:  # none's trial count, no compute limit
        return {"pruner": pruner, "trials": total // int(base["train"]["optim"]["epochs"]), "budget": None}
    return {"pruner": pruner, "budget": {"trial_epochs": budget}}


def study_files(study: Path, seeds: Sequence[int], folder: Path, arms: Sequence[str] = ARMS) -> list[Path]:
    """One study file per (seed, arm), its relative paths made absolute."""
    base = yaml.safe_load(study.read_text(encoding="utf-8"))
    for key in ("train", "search_space"):
        if isinstance(base.get(key), str):
            base[key] = str((study.parent / base[key]).resolve())
    train = base["train"] if isinstance(base["train"], dict) else yaml.safe_load(Path(base["train"]).read_text("utf-8"))
    paths = []
    for seed in seeds:
        for arm in arms:
            name = f"{arm}-s{seed}"
            data = {**base, "name": name, "sampler": {**base["sampler"], "seed": seed},
                    **arm_settings({**base, "train": train}, arm)}
            path = folder / f"{name}.yaml"
            path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
            paths.append(path)
    return paths


def outcome(folder: Path) -> dict[str, Any]:
    """One study's counts, its COMPLETE trials' front and that front's hypervolume."""
    table = load_trials(folder / "trials.csv")
    done = table[table["state"] == "COMPLETE"]
    arm, seed = folder.name.rsplit("-s", 1)
    dense = float(table["dense_mib"].dropna().iloc[0])
    front = pareto_front(table)
    return {"arm": arm, "seed": int(seed), "trials": len(table), "complete": len(done),
            "epochs": int(table["epochs"].fillna(0).sum()),
            "hv": hypervolume(done["val_acc"], done["size_entropy_mib"], (0.0, dense)),
            "front": [{"size": float(s), "accuracy": float(a)} for s, a in zip(front["size_entropy_mib"], front["val_acc"])]}


def search_efficiency_outcomes(outcomes: pd.DataFrame) -> list[dict[str, Any]]:
    """The ``trials`` view (``none`` and the ``*_trials`` arms) as `search_efficiency.py` saves it: a COMPLETE
    trial trained every epoch, so its accuracy is already its full-training one."""
    rows = outcomes[(outcomes["arm"] == "none") | outcomes["arm"].str.endswith("_trials")]
    return [{"arm": row.arm.removesuffix("_trials"), "seed": int(row.seed), "trial_epochs": int(row.epochs),
             "front": row.front, "full_accuracies": [p["accuracy"] for p in row.front]} for row in rows.itertuples()]


def compute_outcomes(outcomes: pd.DataFrame, budget: int) -> list[dict[str, Any]]:
    """The ``compute`` view: per seed, each budgeted arm's final hypervolume as a fraction of ``none``'s and its
    budget as a share of ``none``'s, under the name of the replay's arm it is checked against."""
    rows = []
    for row, share in zip(outcomes.itertuples(), share_of_none(outcomes)):
        spent = arm_budget(str(row.arm), budget)
        if spent is not None and pd.notna(share):
            rows.append({"arm": str(row.arm).removesuffix("_third"), "seed": int(row.seed), "share": spent / budget,
                         "hv": float(share)})
    return rows


def share_of_none(outcomes: pd.DataFrame) -> pd.Series:
    """Each study's hypervolume as a fraction of ``none``'s for its seed (NaN where that seed has no ``none``)."""
    none = outcomes[outcomes["arm"] == "none"].set_index("seed")["hv"]
    return outcomes["hv"] / outcomes["seed"].map(none)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=ROOT / "studies" / "digits.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[20, 21, 22, 23, 24])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS), help="arms to run (default: all)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "real")
    args = parser.parse_args(argv)
    args.runs.mkdir(parents=True, exist_ok=True)
    for path in study_files(args.study, args.seeds, args.runs, args.arms):
        if not (args.runs / path.stem / "trials.csv").exists():
            print(f"running {path.stem}", file=sys.stderr, flush=True)
            subprocess.run([MSUP, "study", "launch", str(path), "--runs-dir", str(args.runs)], check=True,
                           stdout=subprocess.DEVNULL)
    table = pd.DataFrame([outcome(f.parent) for f in sorted(args.runs.glob("*/trials.csv"))])
    budget = int(yaml.safe_load(args.study.read_text(encoding="utf-8"))["budget"]["trial_epochs"])
    for name, rows in (("outcomes.json", search_efficiency_outcomes(table)), ("compute.json", compute_outcomes(table, budget))):
        (args.runs / name).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    table["hv_pct"] = 100 * share_of_none(table)
    print(table.drop(columns="front").to_string(index=False))
    columns = ["trials", "complete", "epochs", "hv", "hv_pct"]
    print(table.groupby("arm", sort=False)[columns].agg(["mean", "std"]).round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
