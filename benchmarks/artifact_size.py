"""Size and speed of the compressed model file (``*.msup``) for ImageNet ResNet-50.

Builds ResNet-50 (1000 classes, 3x224x224) with the M-Sup reference coats
p = [0.7, 0.9212, 0.9685]; levels are the untrained ones cut from the initial
scores (their histogram, hence the coded size, is fixed by p). Prints:

- the file's bytes split into levels / BatchNorm tensors / header, against the
  entropy bound of the levels plus the raw BatchNorm bytes the file must hold;
- the same for the unary (paper-accounting) code;
- the file with BatchNorm exact, folded (scale and shift, fp32) and folded in
  fp16, against the entropy-bound accounting of `msup.sizes`;
- the paper and entropy-bound MiB of `msup.sizes` for comparison;
- seconds to encode and decode all levels (codec only, median of repeats) and
  to save / load the whole file (load includes rebuilding the network).

    python benchmarks/artifact_size.py [--repeats 3] [--model resnet50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from msup.artifact import load_model, save_model
from msup.codec import decode_levels, encode_levels
from msup.layers import MaskConfig, refresh_levels, supermask_layers
from msup.models import ModelSpec

PAPER_P = (0.7, 0.9212, 0.9685)


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="resnet50")
    args = parser.parse_args()

    spec = ModelSpec(args.model, 1000, (3, 224, 224), MaskConfig(PAPER_P))
    model = spec.build().eval()
    refresh_levels(model)
    levels = [layer.levels().numpy() for _, layer in supermask_layers(model)]
    coats = len(PAPER_P)
    print(f"{args.model}: {sum(lv.size for lv in levels):,} masked weights in {len(levels)} layers, p = {list(PAPER_P)}")
    print()
    print("| code | file bytes | levels | BN + other tensors | header | levels / n*H "
          "| bound: levels n*H + tensors | file / bound |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.msup"
        for code in ("entropy", "unary"):
            s = save_model(model, spec, path, code=code)
            bound = s.level_entropy_bound_bytes + s.tensor_bytes
            print(f"| {code} | {s.file_bytes:,} | {s.level_bytes:,} | {s.tensor_bytes:,} | {s.header_bytes:,} "
                  f"| {s.level_bytes / s.level_entropy_bound_bytes:.5f} | {bound:,.0f} | {s.file_bytes / bound:.4f} |")
        print()
        print("| BatchNorm | file bytes | tensors | header | file / entropy-bound accounting |")
        print("|---|---:|---:|---:|---:|")
        for batchnorm in ("exact", "folded", "folded-fp16"):
            s = save_model(model, spec, path, batchnorm=batchnorm)
            accounting = s.entropy_mib * 2**20
            print(f"| {batchnorm} | {s.file_bytes:,} | {s.tensor_bytes:,} | {s.header_bytes:,} | "
                  f"{s.file_bytes / accounting:.4f} |")
        s = save_model(model, spec, path)
        print()
        print(f"reference sizes (levels + 32-bit BN gamma): paper {s.paper_mib:.3f} MiB, "
              f"entropy bound {s.entropy_mib:.3f} MiB, dense fp32 {s.dense_mib:.2f} MiB; "
              f"this file {s.file_mib:.3f} MiB ({s.compression:.1f}x smaller than dense)")
        print()
        print("| step | seconds (median) |")
        print("|---|---:|")
        for code in ("entropy", "unary"):
            encoded = [encode_levels(lv, coats, code) for lv in levels]
            encode_s = median_seconds(lambda code=code: [encode_levels(lv, coats, code) for lv in levels], args.repeats)
            decode_s = median_seconds(lambda encoded=encoded: [decode_levels(e) for e in encoded], args.repeats)
            print(f"| encode all levels, {code} | {encode_s:.2f} |")
            print(f"| decode all levels, {code} | {decode_s:.2f} |")
        save_s = median_seconds(lambda: save_model(model, spec, path), args.repeats)
        print(f"| save_model (entropy; levels cached) | {save_s:.2f} |")
        print(f"| load_model (check, decode, rebuild from seed) | {median_seconds(lambda: load_model(path), args.repeats):.2f} |")


if __name__ == "__main__":
    main()
