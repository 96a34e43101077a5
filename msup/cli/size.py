"""`msup size`: model sizes of a configuration, without training."""

from __future__ import annotations

import argparse
import json

from msup.errors import InputError


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "size",
        help="paper, entropy-bound and dense sizes of a model under given coats",
        description=(
            "Print the model size of a supermasked network without training it: the reference "
            "(paper) accounting, the entropy bound and the dense fp32 size, in MiB (2^20 bytes)."
        ),
    )
    p.add_argument("--model", required=True, help="registered model name (see `--model list`)")
    p.add_argument("--sparsities", required=True, help="cumulative sparsities p1,p2,... strictly increasing in (0,1)")
    p.add_argument("--coats", type=int, help="number of coats N; must equal the number of sparsities")
    p.add_argument("--dataset", help="sets input shape and classes (default: the model's usual data set)")
    p.add_argument("--dense-first-last", action="store_true", help="keep first and last layers dense (fp32)")
    p.add_argument("--no-bn-affine", action="store_true", help="non-affine BatchNorm (edge-popup)")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier (Conv-n and cnn1d; default 1)")
    p.add_argument("--batchnorm", action="store_true", help="BatchNorm after every conv (Conv-n)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    p.set_defaults(run=run)


def parse_floats(text: str, key: str) -> list[float]:
    """'0.7,0.9' -> [0.7, 0.9], or an `InputError` naming ``key``."""
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"{key}={text!r} must be comma-separated numbers, e.g. 0.7,0.92,0.97") from None


def _amount(mib: float) -> str:
    """MiB with two decimals, or KiB for the small networks two decimals of MiB would show as 0.00."""
    return f"{mib:.2f} MiB" if mib >= 0.1 else f"{1024 * mib:.2f} KiB"


def run(args: argparse.Namespace) -> int:
    from msup.catalog import dataset_info, validate_sparsities
    from msup.layers import MaskConfig
    from msup.models import create_model, model_entry
    from msup.sizes import inventory, model_size

    sparsities = validate_sparsities(parse_floats(args.sparsities, "--sparsities"), args.coats)
    entry = model_entry(args.model)
    data = dataset_info(args.dataset or entry.default_dataset)
    model = create_model(
        entry.name, data.num_classes, data.input_shape, MaskConfig(sparsities),
        dense_first_last=args.dense_first_last, bn_affine=not args.no_bn_affine, width=args.width,
        batchnorm=args.batchnorm,
    )
    size = model_size(inventory(model), sparsities)
    if args.format == "json":
        print(json.dumps({"model": entry.name, "dataset": data.name, **size.as_dict()}, indent=2))
        return 0
    rows = [
        ("model", f"{entry.name} on {data.name} ({data.num_classes} classes)"),
        ("coats / sparsities", f"{size.coats} / {', '.join(f'{p:g}' for p in sparsities)}"),
        ("masked weights", f"{size.masked_weights:,}"),
        ("dense fp32", _amount(size.dense_mib)),
        ("paper accounting", f"{_amount(size.paper_mib)}  ({size.paper_bits_per_weight:.3f} bits/weight, "
                             f"{size.compression_paper:.1f}x smaller than dense)"),
        ("entropy bound", f"{_amount(size.entropy_mib)}  ({size.entropy_bits_per_weight:.3f} bits/weight, "
                          f"{size.compression_entropy:.1f}x smaller than dense)"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    return 0
