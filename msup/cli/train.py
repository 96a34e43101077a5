"""`msup train`: train one configuration, write its metrics, sizes and checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

from msup.errors import InputError


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "train",
        help="train one configuration; report accuracy and model size",
        description=(
            "Train the configuration in CONFIG.yaml (schema: `msup schema train`; examples: studies/train/) and "
            "write DIR/config.yaml (resolved), DIR/metrics.jsonl (one line per epoch), DIR/checkpoint.pt "
            "(after every epoch) and DIR/final.json (validation and test accuracy of the final and the "
            "best-validation state, sizes in MiB, wall_s in seconds). The whole configuration and the data "
            "are checked before DIR is created: bad input exits with code 2 and writes nothing."
        ),
    )
    p.add_argument("config", metavar="CONFIG.yaml", help="training config (YAML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one key, e.g. --set optim.lr=0.05 --set mask.sparsities=[0.5,0.8] (repeatable)")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: runs/train/<config stem>)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from msup.config import dump_yaml, load_config
    from msup.loaders import Batch, Batches
    from msup.train import Trainer

    config = load_config(args.config, args.overrides)
    out: Path = args.out or Path("runs") / "train" / Path(args.config).stem
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    trainer = Trainer(config)  # loads the data and builds the model: the last input checks
    epochs = config.optim.epochs

    def bar(batches: Batches, epoch: int) -> Iterable[Batch]:
        return tqdm(batches, total=len(batches), desc=f"epoch {epoch}/{epochs}", unit="batch",
                    file=sys.stderr, leave=False, dynamic_ncols=True, disable=None)

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_yaml(config))
    with (out / "metrics.jsonl").open("w") as log:
        for m in trainer.epochs(progress=bar):
            log.write(json.dumps(m) + "\n")
            log.flush()
            trainer.save_checkpoint(out / "checkpoint.pt")
            tqdm.write(
                f"epoch {m['epoch']}/{epochs}  loss {m['train_loss']:.4f}  train {m['train_acc']:.2%}  "
                f"val {m['val_acc']:.2%}  best {m['best_val_acc']:.2%}  lr {m['lr']:.4g}  {m['epoch_s']:.1f}s",
                file=sys.stderr,
            )
    result = trainer.finish()
    (out / "final.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
    print(
        f"test accuracy {result.test_acc:.2%} (final), {result.best_test_acc:.2%} (best val, epoch "
        f"{result.best_epoch}); size {result.size_paper_mib:.4g} MiB paper, {result.size_entropy_mib:.4g} MiB "
        f"entropy, {result.dense_mib:.4g} MiB dense; results in {out}"
    )
    return 0
