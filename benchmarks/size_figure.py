"""One figure kind the coat experiments share: test accuracy against model size, one line per arm."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

Line = tuple[Sequence[float], Sequence[float], Sequence[float] | None]  # sizes, accuracies, spreads (or none)


def accuracy_against_size(lines: Mapping[str, Line], path: Path, title: str, xlabel: str, ylabel: str) -> None:
    """Draw each labelled line (with error bars where it has spreads) on a log size axis and save to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 4.2))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for label, (sizes, accuracies, spreads) in lines.items():
        if spreads is None:
            axes.plot(sizes, accuracies, marker="o", label=label)
        else:
            axes.errorbar(sizes, accuracies, yerr=spreads, marker="o", capsize=3, label=label)
    axes.set_xscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    axes.grid(True, color="0.92")
    axes.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=150, bbox_inches="tight")
