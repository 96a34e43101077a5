"""`msup study launch | resume | status | list`: multi-objective searches on Ray Tune + Optuna."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from msup.search.driver import StudyOutcome

DEFAULT_STUDY = Path(__file__).resolve().parents[1] / "resources" / "digits.yaml"  # installed with the package
RUNS_HELP = "folder of study folders, a path or s3://bucket/prefix (default: $MSUP_RUNS or ./runs)"
BUDGET_HELP = ("a compute budget, beside the trial count (whichever is reached first ends sampling): "
               "trial_epochs=N, trial_hours=H (hours of the resources trials hold) or hours=H (the study's "
               "wall-clock); repeat for several (default: the file's budget)")


def register(commands: argparse._SubParsersAction) -> None:
    study = commands.add_parser(
        "study",
        help="launch, resume or inspect a search study",
        description="A study searches coat counts, sparsities and training settings for the best accuracy at each model size.",
    )
    actions = study.add_subparsers(title="actions", metavar="ACTION", parser_class=type(study))
    actions.required = True

    launch = actions.add_parser(
        "launch",
        help="start a new study",
        description=(
            "Validate the study file, create runs/<name>/ and run its trials on Ray Tune with Optuna "
            "sampling (and pruning). Without a file, the embedded default study (studies/digits.yaml, installed "
            "with msup) runs on the CPU in a few minutes. Writes trials.csv, trials.parquet, pareto.png and pareto.csv when done."
        ),
    )
    launch.add_argument("study_file", nargs="?", type=Path, help="study YAML (default: the embedded digits study)")
    launch.add_argument("--name", help="study name (default: the file's name key)")
    launch.add_argument("--address", help="Ray cluster address ('auto', ray://host:10001); default: a local instance")
    launch.add_argument("--storage", help="Optuna storage URL (postgresql://..., sqlite:///...) or journal file path")
    launch.add_argument("--num-samples", type=int, help="number of trials (default: the file's trials)")
    launch.add_argument("--budget", action="append", metavar="KIND=VALUE", help=BUDGET_HELP)
    launch.add_argument("--runs-dir", help="folder of study folders, a path or s3://bucket/prefix (default: the "
                        "file's runs_dir, else $MSUP_RUNS, else ./runs); object storage needs a database --storage")
    launch.add_argument("--dry-run", action="store_true", help="validate and show the study, run nothing")
    launch.set_defaults(run=_launch)

    resume = actions.add_parser(
        "resume",
        help="continue a crashed or interrupted study, or extend it",
        description=(
            "Continue a study after a crash, Ctrl-C or reboot: finished trials are kept, unfinished ones "
            "continue from their last checkpoint. --num-samples K extends the study to K trials in total, "
            "--budget KIND=VALUE its compute budget (what is spent is kept in the study's storage). "
            "A study in object storage resumes from any machine that reaches its bucket and database."
        ),
    )
    resume.add_argument("study", help="study name (under the runs folder), study folder, or its s3:// URI")
    resume.add_argument("--num-samples", type=int, help="total number of trials wanted")
    resume.add_argument("--budget", action="append", metavar="KIND=VALUE",
                        help="raise the study's compute budget to VALUE in total: trial_epochs, trial_hours or hours")
    resume.add_argument("--address", help="Ray cluster address (default: the study's, else a local instance)")
    resume.add_argument("--runs-dir", help=RUNS_HELP)
    resume.set_defaults(run=_resume)

    status = actions.add_parser(
        "status", help="trial counts, budget, current Pareto front and driver state",
        description="Counts by state, the budget spent and left (trials, trial-epochs, hours), the current Pareto "
                    "front, elapsed time and whether a driver is running; --watch keeps it on screen, with the "
                    "running trials and an ETA.",
    )
    status.add_argument("study", help="study name (under the runs folder), study folder, or its s3:// URI")
    status.add_argument("--format", choices=("table", "json", "csv"), default="table")
    status.add_argument("--watch", action="store_true",
                        help="redraw in the terminal until Ctrl-C: progress bar, ETA, running trials and their "
                             "epoch, the top of the front (reads only; the study goes on)")
    status.add_argument("--every", type=float, default=5.0, metavar="SECONDS",
                        help="with --watch, seconds between redraws (default: %(default)s)")
    status.add_argument("--runs-dir", help=RUNS_HELP)
    status.set_defaults(run=_status)

    listing = actions.add_parser(
        "list", help="every study under the runs folder",
        description="One line per study under the runs folder: trial counts, the budget spent, whether a "
                    "driver runs it now, and when a trial last started or finished.",
    )
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.add_argument("--runs-dir", help=RUNS_HELP)
    listing.set_defaults(run=_list)


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _launch(args: argparse.Namespace) -> int:
    from msup.errors import InputError
    from msup.search.config.budget import UNITS, parse_budget_option
    from msup.search.config.preflight import load_study_config
    from msup.search.driver import launch

    _quiet_optuna()
    path = args.study_file or DEFAULT_STUDY
    if args.num_samples is not None and args.num_samples < 1:
        raise InputError(f"--num-samples {args.num_samples} must be at least 1")
    budget = parse_budget_option(args.budget).to_dict() if args.budget else None
    config = load_study_config(path, name=args.name, trials=args.num_samples, storage=args.storage, budget=budget)
    if args.dry_run:
        limits = [f"{config.trials} trials"] if config.trials is not None else []
        limits += [f"{limit:g} {UNITS[kind]}" for kind, limit in (config.budget.limits() if config.budget else {}).items()]
        print(f"study {config.name!r} is valid: budget {' or '.join(limits)}, {config.max_concurrent} at once, "
              f"objectives {config.accuracy} (max) and {config.size} (min), sampler {config.sampler['name']}, "
              f"pruner {config.pruner.name}, parameters: {', '.join(p.name for p in config.space.params)}")
        return 0
    outcome = launch(config, args.runs_dir, args.address)
    _print_outcome(outcome)
    return 0


def _resume(args: argparse.Namespace) -> int:
    from msup.errors import InputError
    from msup.search.config.budget import parse_budget_option
    from msup.search.driver import resume
    from msup.search.study import find_study_dir

    if args.num_samples is not None and args.num_samples < 1:
        raise InputError(f"--num-samples {args.num_samples} must be at least 1")
    budget = parse_budget_option(args.budget) if args.budget else None
    _quiet_optuna()
    outcome = resume(find_study_dir(args.study, args.runs_dir), args.num_samples, args.address, budget)
    _print_outcome(outcome)
    return 0


def _status(args: argparse.Namespace) -> int:
    from msup.errors import InputError
    from msup.search.study import find_study_dir, status

    folder = find_study_dir(args.study, args.runs_dir)
    if args.watch:
        from msup.cli.live import watch

        if args.every <= 0:
            raise InputError(f"--every {args.every:g} must be above 0 seconds")
        _quiet_optuna()
        return watch(lambda: status(folder), args.every)
    info = status(folder)
    table = info.pop("table")
    if args.format == "csv":
        print(table.to_csv(index=False), end="")
    elif args.format == "json":
        print(json.dumps(info, indent=2))
    else:
        from msup.cli.live import driver_text
        from msup.search.state.account import describe

        counts = ", ".join(f"{v} {k}" for k, v in info["counts"].items())
        print(f"study {info['study']} ({info['folder']}): {counts}; budget spent: {describe(info['budget'])}; "
              f"{info['elapsed_s']:.0f} s; driver {driver_text(info)}")
        for point in info["front"]:
            print("  front: " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) and not math.isnan(v) else f"{k}={v}"
                                          for k, v in point.items()))
    return 0


def _list(args: argparse.Namespace) -> int:
    from msup.search.state.account import describe
    from msup.search.study import list_studies, runs_dir

    _quiet_optuna()
    rows = list_studies(args.runs_dir)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no studies under {runs_dir(args.runs_dir)}/ (start one with `msup study launch`)")
    for row in rows:
        driver = "driver running" if row["driver_running"] else "no driver"
        if "error" in row:
            print(f"{row['study']}: unreadable ({row['error']}); {driver}")
            continue
        counts = ", ".join(f"{v} {k}" for k, v in row["counts"].items() if v)
        print(f"{row['study']}: {counts or 'no trials'}; budget spent: {describe(row['budget'])}; {driver}; "
              f"last activity {row['last_activity'] or 'never'}")
    return 0


def _print_outcome(outcome: StudyOutcome) -> None:
    counts = ", ".join(f"{v} {k}" for k, v in outcome.counts.items())
    print(f"msup: study folder {outcome.folder}: {counts}")
    for label, path in outcome.paths.items():
        print(f"  {label}: {path}")
