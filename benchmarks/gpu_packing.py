"""How many trials to pack on one GPU: epoch time, images/s and peak memory per trial.

For Conv6 and ResNet-18 (3 coats, p = [0.7, 0.9212, 0.9685]) on CIFAR-shaped
inputs (`synthetic-cifar`: random images, the real training step), k = 1, 2,
4, 8 trials run at once on one GPU as Ray tasks with ``num_gpus = 1/k`` — what
``resources: {gpu: 1/k}`` in a study file asks for — with AMP and channels_last
on and off. Each trial trains one warm-up epoch, then one timed epoch, with
msup's own `Trainer`. Reported per setting: the mean epoch time of a trial,
the images/s of all k together, and the largest peak of GPU memory a trial
allocated (what to size ``gpu: 1/k`` by). CIFAR-10's epoch (40,000 training
images) is extrapolated from the images/s.

    python benchmarks/gpu_packing.py                # the GPU run (about 6 minutes on one GPU)
    python benchmarks/gpu_packing.py --dry-run      # CPU, the MLP, k = 1, 2: seconds; checks the script
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from markdown_table import markdown_table

CIFAR10_TRAIN_IMAGES = 40_000  # 50,000 less the 20% validation split
SPARSITIES = [0.7, 0.9212, 0.9685]


def train_config(model: str, amp: bool, channels_last: bool, batch_size: int, device: str) -> dict[str, Any]:
    return {
        "data": {"name": "synthetic-cifar"},
        "model": {"name": model},
        "mask": {"sparsities": SPARSITIES},
        "optim": {"epochs": 2, "batch_size": batch_size},
        "runtime": {"device": device, "amp": amp, "channels_last": channels_last, "num_workers": 0},
    }


def one_trial(config: dict[str, Any]) -> dict[str, float]:
    """Train a warm-up epoch and a timed one; the timed epoch's seconds, images/s and peak GPU memory."""
    import torch

    from msup.config import TrainConfig
    from msup.train import Trainer

    torch.set_num_threads(1)
    trainer = Trainer(TrainConfig.from_dict(config))
    epochs = trainer.epochs()
    next(epochs)  # warm-up: kernels chosen, allocator filled
    cuda = trainer.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    timed = next(epochs)
    images = trainer.data.train.num_samples // config["optim"]["batch_size"] * config["optim"]["batch_size"]
    return {
        "epoch_s": timed["epoch_s"],
        "images_per_s": images / timed["epoch_s"],
        "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan"),
    }


def measure(model: str, k: int, amp: bool, channels_last: bool, batch_size: int, gpu: bool) -> dict[str, Any]:
    import ray

    task = ray.remote(num_gpus=1 / k if gpu else 0, num_cpus=1 if not gpu else 0)(one_trial)
    config = train_config(model, amp, channels_last, batch_size, "cuda" if gpu else "cpu")
    start = time.perf_counter()
    trials = ray.get([task.remote(config) for _ in range(k)])
    return {
        "model": model, "trials_per_gpu": k, "amp": amp, "channels_last": channels_last,
        "epoch_s": statistics.mean(t["epoch_s"] for t in trials),
        "images_per_s": sum(t["images_per_s"] for t in trials),
        "cifar10_epoch_s": CIFAR10_TRAIN_IMAGES / statistics.mean(t["images_per_s"] for t in trials),
        "peak_mib_per_trial": max(t["peak_mib"] for t in trials),
        "wall_s": time.perf_counter() - start,
    }


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    header = ["model", "trials per GPU", "AMP", "channels_last", "epoch s (per trial)", "images/s (all)",
              "CIFAR-10 epoch s", "peak MiB per trial"]
    cells = [[r["model"], r["trials_per_gpu"], "on" if r["amp"] else "off", "on" if r["channels_last"] else "off",
              f"{r['epoch_s']:.2f}", f"{r['images_per_s']:.0f}", f"{r['cifar10_epoch_s']:.1f}",
              f"{r['peak_mib_per_trial']:.0f}"] for r in rows]
    return markdown_table(header, cells, [False, True, False, False, True, True, True, True])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU, the MLP (a conv net takes minutes there), k = 1 and 2, AMP off: checks the script")
    parser.add_argument("--models", nargs="+", default=["conv6", "resnet18"])
    parser.add_argument("--packing", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", type=Path, help="write the rows as JSON")
    args = parser.parse_args(argv)
    import ray
    import torch

    gpu = not args.dry_run
    if gpu and not torch.cuda.is_available():
        print("gpu_packing: no CUDA GPU here; --dry-run checks the script on the CPU", file=sys.stderr)
        return 2
    models, packing = (["mlp"], [1, 2]) if args.dry_run else (args.models, args.packing)
    switches = [(False, False)] if args.dry_run else list(itertools.product((False, True), repeat=2))
    ray.init(num_cpus=max(packing) if args.dry_run else None, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    rows = []
    try:
        for model, k, (amp, channels_last) in itertools.product(models, packing, switches):
            rows.append(measure(model, k, amp, channels_last, 256 if args.dry_run else args.batch_size, gpu))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        ray.shutdown()
    print(markdown(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
