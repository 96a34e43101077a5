"""Speed of one training step of supermasked networks, as ratios against a dense step.

Measures forward+backward (and the per-step level refresh msup's trainer does)
for Conv4 and ResNet-18 at batch 128 on 32x32 inputs:

- dense: the same network with ordinary trainable weights (the baseline);
- edge-popup (sort/forward): the reference behaviour, a full sort of |scores|
  inside every forward;
- M-Sup N = 1, 3, 5: msup's layers with levels cached and refreshed once per
  step by one selection pass.

Then the cost of one refresh over ResNet-50's 25.5 M scores for N = 1, 3, 5.
Medians over repetitions after warm-up; all in one process and one run.

    python benchmarks/layer_step.py [--repeats 7] [--models conv4,resnet18] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from msup.layers import MaskConfig, refresh_levels
from msup.models import create_model

COATS = {1: (0.7,), 3: (0.7, 0.9212, 0.9685), 5: (0.7, 0.8, 0.9, 0.95, 0.98)}


class _SortedTopK(torch.autograd.Function):
    """Edge-popup's subnet: sort |scores| in every forward, straight-through backward."""

    @staticmethod
    def forward(ctx, magnitude: torch.Tensor, kept: float) -> torch.Tensor:  # type: ignore[override]
        mask = torch.empty_like(magnitude)
        order = magnitude.flatten().sort().indices
        cut = int((1 - kept) * magnitude.numel())
        flat = mask.view(-1)
        flat[order[:cut]] = 0
        flat[order[cut:]] = 1
        return mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad, None


class _EdgePopupConv(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * _SortedTopK.apply(self.scores.abs(), 0.3), None)


class _EdgePopupLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * _SortedTopK.apply(self.scores.abs(), 0.3))


def edge_popup_reference(model: nn.Module) -> nn.Module:
    """Turn a dense model's conv/linear layers into sort-per-forward edge-popup layers."""
    for module in model.modules():
        for cls, ref in ((nn.Conv2d, _EdgePopupConv), (nn.Linear, _EdgePopupLinear)):
            if type(module) is cls:
                module.__class__ = ref
                module.weight.requires_grad_(False)
                module.scores = nn.Parameter(torch.randn_like(module.weight))
    return model


def median_seconds(fns: dict[str, Callable[[], None]], repeats: int, warmup: int = 2,
                   sync: Callable[[], None] = lambda: None) -> dict[str, float]:
    """Median time of each function, run round-robin so that drift in machine load hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, refresh: bool) -> Callable[[], None]:
    params = [p for p in model.parameters() if p.requires_grad]
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        for p in params:
            p.grad = None
        loss_fn(model(x), y).backward()
        if refresh:
            refresh_levels(model)

    return step


def bench_model(name: str, batch: int, repeats: int, device: torch.device, sync: Callable[[], None]) -> list[tuple[str, float]]:
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    variants: list[tuple[str, nn.Module, bool]] = [
        ("dense", create_model(name, 10, (3, 32, 32)), False),
        ("edge-popup (sort/forward)", edge_popup_reference(create_model(name, 10, (3, 32, 32))), False),
    ]
    for coats, p in COATS.items():
        variants.append((f"M-Sup N={coats} (cached)", create_model(name, 10, (3, 32, 32), MaskConfig(p)), True))
    for _, model, _ in variants:
        model.to(device).train()
    steps = {label: step_fn(model, x, y, refresh) for label, model, refresh in variants}
    return list(median_seconds(steps, repeats, sync=sync).items())


def bench_refresh(repeats: int, device: torch.device, sync: Callable[[], None]) -> list[tuple[str, float]]:
    models = {coats: create_model("resnet50", 1000, (3, 224, 224), MaskConfig(p)).to(device) for coats, p in COATS.items()}
    scores = [m.scores for m in models[1].modules() if hasattr(m, "scores")]
    fns = {f"refresh N={coats}": (lambda m=model: refresh_levels(m)) for coats, model in models.items()}
    fns["full sort of every layer"] = lambda: [s.abs().flatten().sort() for s in scores]
    return list(median_seconds(fns, repeats, sync=sync).items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--models", default="conv4,resnet18")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, batch {args.batch}")
    for name in args.models.split(","):
        rows = bench_model(name, args.batch, args.repeats, device, sync)
        dense = rows[0][1]
        print(f"\n| {name} step | ms | × dense |\n|---|---:|---:|")
        for label, seconds in rows:
            print(f"| {label} | {seconds * 1e3:.0f} | {seconds / dense:.2f} |")
    rows = bench_refresh(args.repeats, device, sync)
    print("\n| ResNet-50 scores (25.5 M) | ms |\n|---|---:|")
    for label, seconds in rows:
        print(f"| {label} | {seconds * 1e3:.0f} |")


if __name__ == "__main__":
    main()
