"""A synthetic results table, for tests and for the example figure in the docs.

``python -m analysis.examples [OUT]`` draws ``docs/pareto-example.png`` from it.
The numbers only imitate a study of a ResNet-18-sized network (11.2 M masked
weights); they come from a formula plus noise, not from training, and every
figure made from them says SYNTHETIC in its title.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from msup.analysis.pareto import pareto_mask
from msup.analysis.plots import pareto_figure, save_figure
from msup.analysis.table import (
    BYTES_PER_MIB,
    COMPLETE,
    FAIL,
    PRUNED,
    RUNNING,
    validate_trials,
)

MASKED_WEIGHTS = 11_170_000
MAX_COATS = 5
SYNTHETIC_NAME = "SYNTHETIC DATA (msup.analysis.examples)"
DEFAULT_OUT = Path("docs/pareto-example.png")


def synthetic_trials(n_trials: int = 400, repeats: int = 12, seed: int = 0) -> pd.DataFrame:
    """A validated table that follows the contract of `msup.analysis.table`.

    About 8 % PRUNED, 3 % FAIL and the last two RUNNING. Up to ``repeats``
    configurations of the front are then run again with seeds 1 and 2, as one
    would to confirm a front (so those points get a seed range).
    """
    rng = np.random.default_rng(seed)
    configs = [_config(rng) for _ in range(n_trials - 2 * repeats)]
    rows = [_outcome(rng, trial, config, 0) for trial, config in enumerate(configs)]
    first = pd.DataFrame(rows)
    complete = first[first["state"] == COMPLETE]
    front = complete.index[pareto_mask(complete["val_acc"], complete["size_entropy_mib"])][:repeats]
    reruns = [(configs[i], run_seed) for i in front for run_seed in (1, 2)]
    rows += [_outcome(rng, len(rows) + k, config, run_seed) for k, (config, run_seed) in enumerate(reruns)]
    table = pd.DataFrame(rows)
    table.loc[table.index[-2:], "state"] = RUNNING
    return validate_trials(table, source="synthetic")


def _config(rng: np.random.Generator) -> dict[str, float]:
    coats = int(rng.integers(1, MAX_COATS + 1))
    sparsities = np.sort(rng.uniform(0.3, 0.995, coats))
    config: dict[str, float] = {"coats": coats}
    config.update({f"sparsity_{i + 1}": p for i, p in enumerate(sparsities)})
    config.update({f"sparsity_{i + 1}": np.nan for i in range(coats, MAX_COATS)})
    config["init_scale"] = float(rng.choice([0.5, 1.0, 2.0]))
    config["lr"] = float(10 ** rng.uniform(-2.5, -0.5))
    return config


def _outcome(
    rng: np.random.Generator, trial: int, config: dict[str, float], run_seed: int
) -> dict[str, object]:
    coats = int(config["coats"])
    cumulative = np.array([config[f"sparsity_{i + 1}"] for i in range(coats)])
    fractions = np.diff(np.r_[0.0, cumulative, 1.0])
    fractions = fractions[fractions > 0]
    entropy_bits = float(-(fractions * np.log2(fractions)).sum())
    paper_bits = 1.0 + float((1.0 - cumulative[:-1]).sum())
    capacity = 0.80 + 0.11 * (1 - np.exp(-(coats - 1) / 1.5))
    accuracy = capacity * (1 - 0.45 * np.exp(-6 * entropy_bits)) - 0.04 * abs(np.log10(config["lr"]) + 1.3)
    accuracy += rng.normal(0, 0.008)
    state = rng.choice([COMPLETE, PRUNED, FAIL], p=[0.89, 0.08, 0.03])
    if state == PRUNED:
        accuracy -= rng.uniform(0.05, 0.3)
    val_acc = float(np.clip(accuracy, 0.1, 1.0)) if state != FAIL else np.nan
    entropy_mib = MASKED_WEIGHTS * entropy_bits / 8 / BYTES_PER_MIB
    return {
        "trial": trial, "ray_trial_id": f"synthetic_{trial:05d}", "state": state, **config, "seed": run_seed,
        "epochs": 100 if state == COMPLETE else int(rng.integers(1, 100)),
        "val_acc": val_acc,
        "best_val_acc": val_acc + abs(rng.normal(0, 0.003)),
        "test_acc": val_acc - 0.004 + rng.normal(0, 0.003),
        "size_paper_mib": MASKED_WEIGHTS * paper_bits / 8 / BYTES_PER_MIB,
        "size_entropy_mib": entropy_mib,
        "size_artifact_bytes": round(entropy_mib * BYTES_PER_MIB * 1.02 + 4096),
        "dense_mib": MASKED_WEIGHTS * 32 / 8 / BYTES_PER_MIB,
        "compression": 32 / entropy_bits,
        "wall_s": float(rng.uniform(600, 1800)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Draw the example Pareto figure from the synthetic table."""
    parser = argparse.ArgumentParser(prog="python -m analysis.examples", description=main.__doc__)
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT,
                        help="figure path, .png/.svg/.pdf (default: %(default)s)")
    path = save_figure(pareto_figure(synthetic_trials(), name=SYNTHETIC_NAME), parser.parse_args(argv).out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
