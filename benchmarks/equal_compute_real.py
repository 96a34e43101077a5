"""Real studies under a compute budget: each pruner gets the trial-epochs of the study file's budget.

For every seed, the study file is run as shipped but for its sampler seed and
its pruner (``none``, the file's own as ``size_aware``, ``front_chance``), all
with the file's ``trial_epochs`` budget, plus ``front_chance_third`` with a
third of it: can a rule reach no pruning's final hypervolume with a third of
its compute? Each study is a plain ``msup study launch`` of a generated study
file; a study already in the runs folder is not run again. Prints one row per
study (trials, epochs, hypervolume of its COMPLETE trials against accuracy 0
and the dense size, and that hypervolume as % of ``none``'s for the seed) and
the mean ± std per arm:

    python benchmarks/equal_compute_real.py --seeds 20 21 22 23 24 --runs runs/ec
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml

from msup.analysis.pareto import hypervolume
from msup.analysis.table import load_trials

ROOT = Path(__file__).resolve().parents[1]
MSUP = str(Path(sys.executable).parent / "msup")  # the console script of the environment running this


def study_files(study: Path, seeds: Sequence[int], folder: Path) -> list[Path]:
    """One study file per (arm, seed), its relative paths made absolute."""
    base = yaml.safe_load(study.read_text(encoding="utf-8"))
    for key in ("train", "search_space"):
        if isinstance(base.get(key), str):
            base[key] = str((study.parent / base[key]).resolve())
    budget = int(base["budget"]["trial_epochs"])
    arms = {"none": ({"name": "none"}, budget), "size_aware": (base["pruner"], budget),
            "front_chance": ({"name": "front_chance"}, budget), "front_chance_third": ({"name": "front_chance"}, budget // 3)}
    paths = []
    for seed in seeds:
        for arm, (pruner, epochs) in arms.items():
            name = f"ec-{arm}-s{seed}"
            data = {**base, "name": name, "sampler": {**base["sampler"], "seed": seed}, "pruner": pruner,
                    "budget": {"trial_epochs": epochs}}
            path = folder / f"{name}.yaml"
            path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
            paths.append(path)
    return paths


def outcome(folder: Path) -> dict[str, object]:
    table = load_trials(folder / "trials.csv")
    done = table[table["state"] == "COMPLETE"]
    arm, seed = folder.name[len("ec-"):].rsplit("-s", 1)
    value = hypervolume(done["val_acc"], done["size_entropy_mib"], (0.0, float(table["dense_mib"].dropna().iloc[0])))
    return {"arm": arm, "seed": int(seed), "trials": len(table), "complete": len(done),
            "epochs": int(table["epochs"].fillna(0).sum()), "hv": value}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=ROOT / "studies" / "digits.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[20, 21, 22, 23, 24])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "ec")
    args = parser.parse_args(argv)
    args.runs.mkdir(parents=True, exist_ok=True)
    for path in study_files(args.study, args.seeds, args.runs):
        if not (args.runs / path.stem / "trials.csv").exists():
            print(f"running {path.stem}", file=sys.stderr, flush=True)
            subprocess.run([MSUP, "study", "launch", str(path), "--runs-dir", str(args.runs)], check=True,
                           stdout=subprocess.DEVNULL)
    table = pd.DataFrame([outcome(folder) for folder in sorted(args.runs.glob("ec-*")) if folder.is_dir()])
    none = table[table["arm"] == "none"].set_index("seed")["hv"]
    table["hv_pct"] = 100 * table["hv"] / table["seed"].map(none)
    print(table.to_string(index=False))
    print(table.groupby("arm")[["trials", "complete", "epochs", "hv", "hv_pct"]].agg(["mean", "std"]).round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
