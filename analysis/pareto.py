"""``python -m analysis.pareto STUDY [...]``: the ``msup pareto`` command, run from a checkout without torch."""

from msup.analysis.command import main

if __name__ == "__main__":
    raise SystemExit(main())
