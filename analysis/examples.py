"""``python -m analysis.examples [OUT]``: the documentation's example front, drawn from a synthetic table."""

from msup.analysis.examples import main

if __name__ == "__main__":
    raise SystemExit(main())
