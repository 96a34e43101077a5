"""Analysis of finished studies from a checkout: Pareto fronts, hypervolume and figures.

A thin layer over `msup.analysis`, which the ``msup`` package installs: it
reads only the results table (``runs/<name>/trials.csv``, see
`msup.analysis.table`) and never imports torch or Ray, so it runs anywhere
pandas and matplotlib do. ``python -m analysis.pareto STUDY`` is ``msup pareto
STUDY``; ``python -m analysis.examples`` draws the documentation's example
figure from a synthetic table.
"""

from msup.analysis.pareto import (
    hypervolume,
    hypervolume_history,
    pareto_front,
    pareto_mask,
)
from msup.analysis.report import load_study, write_report, write_study_report
from msup.analysis.table import load_trials, validate_trials

__all__ = [
    "hypervolume", "hypervolume_history", "load_study", "load_trials", "pareto_front", "pareto_mask",
    "validate_trials", "write_report", "write_study_report",
]
