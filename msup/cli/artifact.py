"""`msup export`, `msup inspect`, `msup evaluate`: the compressed model file (``*.msup``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the format module imports torch: a command line that only builds its parser must not
    from msup.artifact_format import ArtifactSummary, LayerSummary


def register(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="write a trained checkpoint as a compressed model file (.msup)",
        description=(
            "Write the model of CHECKPOINT as MODEL.msup: the model spec (its seed regenerates the frozen "
            "weights), every masked weight's coat level, entropy coded (or in the paper's unary code), and "
            "the BatchNorm and other learned tensors. Prints the file's sizes. --batchnorm folded stores each "
            "BatchNorm as the scale and shift it applies at inference (half the bytes; outputs equal up to "
            "float rounding), folded-fp16 in half precision (a quarter)."
        ),
    )
    export.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint written by `msup train`")
    export.add_argument("--out", required=True, type=Path, metavar="MODEL.msup", help="model file to write")
    export.add_argument("--code", choices=("entropy", "unary"), default="entropy",
                        help="level code: entropy (ANS, near n*H bits) or unary (the paper's accounting, exactly)")
    export.add_argument("--batchnorm", choices=("exact", "folded", "folded-fp16"), default="exact",
                        help="BatchNorm as trained (exact, bit-identical outputs) or folded for inference "
                             "(default: %(default)s)")
    export.add_argument("--state", choices=("final", "best"), default="final",
                        help="the checkpoint's final state or its best-validation state")
    export.set_defaults(run=run_export)

    inspect = commands.add_parser(
        "inspect",
        help="sizes and contents of a model file",
        description=(
            "Check MODEL.msup (checksum, header) and print what it holds: total bytes (the file's real size) "
            "split into levels, BatchNorm/other tensors and header, per-layer payloads, and the paper "
            "accounting, entropy bound and dense fp32 sizes for comparison (MiB = 2^20 bytes)."
        ),
    )
    inspect.add_argument("model", metavar="MODEL.msup", help="model file")
    inspect.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    inspect.set_defaults(run=run_inspect)

    evaluate = commands.add_parser(
        "evaluate",
        help="test accuracy of a model file",
        description="Rebuild the model stored in MODEL.msup and print its accuracy on a data set's test split.",
    )
    evaluate.add_argument("model", metavar="MODEL.msup", help="model file")
    evaluate.add_argument("--data", required=True, metavar="NAME", help="data set name, e.g. digits, cifar10")
    evaluate.add_argument("--data-dir", type=Path, metavar="DIR", help="where the data set lives")
    evaluate.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    evaluate.set_defaults(run=run_evaluate)


def run_export(args: argparse.Namespace) -> int:
    from msup.artifact import save_model
    from msup.checkpoint import model_from_checkpoint

    model, spec = model_from_checkpoint(args.checkpoint, state=args.state)
    summary = save_model(model, spec, args.out, code=args.code, batchnorm=args.batchnorm)
    print(f"wrote {args.out}")
    print(_overview(summary))
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from msup.artifact import read_summary

    summary = read_summary(args.model)
    if args.format == "json":
        print(json.dumps({"path": str(args.model), **summary.as_dict()}, indent=2))
    else:
        print(_overview(summary))
        print()
        print(_layer_table(summary.layers))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from msup.artifact import load_model
    from msup.train import evaluate

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, spec = load_model(args.model, device=device)
    acc = evaluate(model, args.data, data_dir=args.data_dir, split="test", device=device)
    print(f"{spec.name} from {args.model}: test accuracy {acc:.2%} on {args.data}")
    return 0


def _overview(s: ArtifactSummary) -> str:
    spec, mask = s.spec, s.spec.mask
    assert mask is not None
    weights = max(s.masked_weights, 1)
    rows = [
        ("model", f"{spec.name}, {spec.num_classes} classes, input {'x'.join(map(str, spec.input_shape))}, "
                  f"seed {mask.seed}"),
        ("coats / sparsities", f"{mask.coats} / {', '.join(f'{p:g}' for p in mask.sparsities)}"),
        ("format", f"version {s.format_version}, written by msup {s.msup_version}, code {', '.join(s.codes)}, "
                   f"BatchNorm {s.batchnorm}"),
        ("file", f"{s.file_bytes:,} bytes = {s.file_mib:.3f} MiB  ({s.compression:.1f}x smaller than dense fp32)"),
        ("  levels", f"{s.level_bytes:,} bytes  ({len(s.layers)} layers, {s.masked_weights:,} weights, "
                     f"{8 * s.level_bytes / weights:.3f} bits/weight; entropy bound "
                     f"{s.level_entropy_bound_bytes:,.0f} bytes)"),
        ("  tensors", f"{s.tensor_bytes:,} bytes  ({len(s.tensors)} BatchNorm and other learned tensors)"),
        ("  header", f"{s.header_bytes:,} bytes  (compressed JSON header, magic, length, SHA-256)"
                     if s.format_version >= 2 else f"{s.header_bytes:,} bytes  (JSON header, magic, length, SHA-256)"),
        ("paper accounting", f"{s.paper_mib:.3f} MiB  (unary levels + 32-bit BN gamma)"),
        ("entropy bound", f"{s.entropy_mib:.3f} MiB  (n*H(f) levels + 32-bit BN gamma)"),
        ("dense fp32", f"{s.dense_mib:.3f} MiB"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _layer_table(layers: tuple[LayerSummary, ...]) -> str:
    header = ("layer", "shape", "weights", "level counts", "payload bytes", "bits/weight", "bound bytes")
    rows = [header] + [
        (
            layer.name,
            "x".join(map(str, layer.shape)),
            f"{layer.n:,}",
            " ".join(map(str, layer.level_counts)),
            f"{layer.payload_bytes:,}",
            f"{8 * layer.payload_bytes / layer.n:.3f}",
            f"{layer.entropy_bound_bits / 8:,.0f}",
        )
        for layer in layers
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    text_columns = 4  # left-aligned; the numeric columns after them are right-aligned
    return "\n".join(
        "  ".join(f"{c:<{w}}" if i < text_columns else f"{c:>{w}}" for i, (c, w) in enumerate(zip(row, widths)))
        for row in rows
    )
