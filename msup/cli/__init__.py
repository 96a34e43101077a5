"""The `msup` command: a thin shell over library functions.

Each submodule owns one command group and exposes ``register(subparsers)``;
the handler it installs returns the process exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from msup import failpoints
from msup.errors import InputError, Preempted, RunError, is_disk_full, last_line
from msup.folder import FolderError

# 143 = 128 + SIGTERM: what a scheduler expects of a job that stopped on a preemption notice.
EXIT_OK, EXIT_RUNTIME, EXIT_INPUT, EXIT_PREEMPTED = 0, 1, 2, 143


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from msup.cli import artifact, pareto, schema, size, study, train

    parser = _Parser(
        prog="msup",
        description=(
            "Search multicoated supermasks: what accuracy at what model size. "
            "Run `msup COMMAND --help` for each command."
        ),
    )
    from msup.version import __version__

    parser.add_argument("--version", action="version", version=f"msup {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for module in (size, train, study, pareto, artifact, schema):
        module.register(commands)
    return parser


class _Stdout(logging.Handler):
    """Writes to whatever ``sys.stdout`` is when a message comes (a test's capture, a redirected stream)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
            sys.stdout.flush()
        except Exception:  # logging's rule: a failing handler must not raise into the code that logged
            self.handleError(record)


def show_library_messages() -> None:
    """msup's library logs (logger ``msup``); the command line shows its messages at INFO and above, as written."""
    logger = logging.getLogger("msup")
    if not any(isinstance(handler, _Stdout) for handler in logger.handlers):
        handler = _Stdout()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    show_library_messages()
    try:
        failpoints.check()
        return int(args.run(args) or EXIT_OK)
    except InputError as exc:
        print(f"msup: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except Preempted as exc:
        print(f"msup: {exc}", file=sys.stderr)
        return EXIT_PREEMPTED
    except (RunError, FolderError) as exc:  # FolderError: object storage unreachable, or refusing access
        print(f"msup: failed: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        print(f"msup: failed: disk full ({last_line(exc)}); free space, then run the command again",
              file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        print("msup: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
