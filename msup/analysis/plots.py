"""Figures in the conventions of compression papers: size (log) against accuracy (%).

Built on `matplotlib.figure.Figure` with the Agg canvas, so nothing touches
pyplot's global state or needs a display. Only COMPLETE trials are drawn;
pruned, failed and running ones are left out. Artists that tests and callers
may look up carry a ``gid`` (``GID_*`` below).
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import cycle
from os import PathLike
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import StrMethodFormatter
from matplotlib.transforms import Bbox

from msup.analysis.pareto import ELAPSED_S, HYPERVOLUME, TRIAL_EPOCHS, mark_front
from msup.analysis.table import (
    BEST_VAL_ACC,
    COATS,
    SIZE_ARTIFACT_BYTES,
    SIZE_ENTROPY_MIB,
    SIZE_PAPER_MIB,
    TEST_ACC,
    TRIAL,
    VAL_ACC,
    TableError,
    complete_trials,
    dense_size,
    format_size,
    parameter_columns,
    size_unit,
)

FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
GID_FRONT_LINE, GID_FRONT_POINTS, GID_DOMINATED = "front-line", "front-points", "dominated"
GID_DENSE, GID_EDGE_POPUP, GID_SEED_RANGE, GID_COAT_LABEL = "dense", "edge-popup", "seed-range", "coat-label"
AXIS_LABELS = {
    SIZE_ENTROPY_MIB: "model size, entropy bound (MiB)",
    SIZE_PAPER_MIB: "model size, paper accounting (MiB)",
    SIZE_ARTIFACT_BYTES: "model file size (bytes)",
    VAL_ACC: "validation accuracy (%)",
    BEST_VAL_ACC: "best validation accuracy (%)",
    TEST_ACC: "test accuracy (%)",
}
FIGSIZE_IN = (8.0, 4.8)
PNG_DPI = 150
_STUDY_COLOURS = tuple(colormaps["tab10"](i) for i in range(10))
_STUDY_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")
# Where a coat label may sit relative to its point, in typographic points; the first that fits
# wins. Up-left first: on a rising front that corner is empty (nothing is smaller and better).
_LABEL_OFFSETS_PT = ((-5, 5), (-7, -2), (0, 9), (6, 6), (6, -9))
_MARKER_RADIUS_PT = 4.0


def pareto_figure(trials: pd.DataFrame, x: str = SIZE_ENTROPY_MIB, y: str = VAL_ACC, name: str = "") -> Figure:
    """Front (step line, points coloured and labelled by coat count) over the dominated trials.

    Baselines: the dense fp32 size as a dashed vertical line (its accuracy is
    not known) and the best edge-popup (N = 1) trial as a star. Where several
    COMPLETE rows share a configuration (differing only in ``seed``), a front
    point gets a bar spanning their accuracy range.
    """
    rows = complete_trials(trials, x, y)
    on_front = mark_front(rows, x, y)
    front = rows[on_front].sort_values([x, y, TRIAL], kind="stable")
    figure, axes = _new_axes(x, y)
    dominated = rows[~on_front]
    axes.scatter(dominated[x], 100 * dominated[y], s=9, color="0.82", linewidths=0, zorder=1,
                 label=f"dominated ({len(dominated)})", gid=GID_DOMINATED)
    axes.step(front[x], 100 * front[y], where="post", color="0.3", linewidth=1.2, zorder=2,
              label="Pareto front", gid=GID_FRONT_LINE)
    ranges = _draw_seed_ranges(axes, rows, front, x, y)
    axes.scatter(front[x], 100 * front[y], s=30, c=[_coat_colour(n) for n in front[COATS]],
                 edgecolors="black", linewidths=0.5, zorder=4, gid=GID_FRONT_POINTS)
    for coats in sorted(front[COATS].unique()):
        axes.scatter([], [], s=30, color=_coat_colour(coats), edgecolors="black", linewidths=0.5,
                     label=f"N={coats:.0f}")
    star = _draw_best_edge_popup(axes, rows, x, y)
    dense = dense_size(trials, x)
    if dense is not None:
        _draw_dense(axes, {dense: "dense fp32"}, x)
    title = f"Pareto front: {len(front)} of {len(rows)} COMPLETE trials"
    _finish(figure, axes, f"{name}: {title}" if name else title)
    obstacles = [_marker_box(axes, px, 100 * py) for px, py in zip(front[x], front[y])]
    obstacles += [_marker_box(axes, px, py) for px, py in star]
    obstacles += [_marker_box(axes, px, low, high) for px, low, high in ranges]
    obstacles += [text.get_window_extent(_renderer(figure)) for text in axes.texts]
    _label_coat_counts(axes, front, x, y, obstacles)
    return figure


def compare_figure(studies: Mapping[str, pd.DataFrame], x: str = SIZE_ENTROPY_MIB, y: str = VAL_ACC) -> Figure:
    """Several studies' fronts on one figure, one colour and marker per study name."""
    if not studies:
        raise TableError("no study to compare")
    figure, axes = _new_axes(x, y)
    dense_names: dict[float, list[str]] = {}
    for (name, trials), marker, colour in zip(studies.items(), cycle(_STUDY_MARKERS), cycle(_STUDY_COLOURS)):
        rows = complete_trials(trials, x, y)
        front = rows[mark_front(rows, x, y)].sort_values([x, y, TRIAL], kind="stable")
        axes.step(front[x], 100 * front[y], where="post", color=colour, marker=marker, markersize=5,
                  markeredgecolor="black", markeredgewidth=0.4, linewidth=1.2, label=name,
                  gid=f"{GID_FRONT_LINE}:{name}")
        dense = dense_size(trials, x)
        if dense is not None:
            dense_names.setdefault(dense, []).append(name)
    if len(dense_names) == 1:
        _draw_dense(axes, {size: "dense fp32" for size in dense_names}, x)
    else:
        _draw_dense(axes, {size: f"dense fp32: {', '.join(names)}" for size, names in dense_names.items()}, x)
    _finish(figure, axes, f"Pareto fronts of {len(studies)} studies")
    return figure


def hypervolume_figure(
    histories: Mapping[str, pd.DataFrame], reference: tuple[float, float], x: str, log_size: bool = True
) -> Figure:
    """Hypervolume against compute, one step line per study (all against ``reference``): against
    cumulative trial-epochs, and beside it against wall-clock where the histories have times.

    A pruner's savings show here: the same front for fewer trial-epochs is a curve that rises sooner.
    """
    timed = any(history[ELAPSED_S].notna().any() for history in histories.values())
    figure = Figure(figsize=(FIGSIZE_IN[0] * (1.6 if timed else 1.0), FIGSIZE_IN[1]), layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(1, 2 if timed else 1, sharey=True, squeeze=False)[0]
    hours = timed and max(float(h[ELAPSED_S].max()) for h in histories.values() if h[ELAPSED_S].notna().any()) > 7200
    clock_unit, clock_scale = ("hours", 3600.0) if hours else ("minutes", 60.0)
    for (name, history), colour in zip(histories.items(), cycle(_STUDY_COLOURS)):
        axes_and_x = [(panels[0], history[TRIAL_EPOCHS])] + ([(panels[1], history[ELAPSED_S] / clock_scale)] if timed else [])
        for axes, spent in axes_and_x:
            axes.step(spent, history[HYPERVOLUME], where="post", color=colour, marker=".", markersize=4,
                      linewidth=1.2, label=name)
    size_axis = "decades of size" if log_size else f"size ({size_unit(x)})"
    panels[0].set_xlabel("trial-epochs trained (all trials, cumulative)")
    panels[0].set_ylabel(f"hypervolume (accuracy x {size_axis})")
    if timed:
        panels[1].set_xlabel(f"wall-clock since the first trial started ({clock_unit})")
    title = f"Hypervolume, reference: accuracy {100 * reference[0]:g} %, size {format_size(reference[1], x)}"
    figure.suptitle(f"{next(iter(histories))}: {title}" if len(histories) == 1 else title, fontsize=10)
    for axes in panels:
        axes.grid(True, color="0.92")
        axes.set_xlim(left=0)  # compute counts from nothing spent
    if len(histories) > 1:
        panels[-1].legend(loc="lower right", fontsize=8)
    return figure


def save_figure(figure: Figure, path: str | PathLike[str]) -> Path:
    """Write ``figure`` as PNG, SVG or PDF, chosen by the file suffix; returns the path."""
    path = check_figure_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=PNG_DPI)
    return path


def check_figure_path(path: str | PathLike[str]) -> Path:
    """``path`` as a Path if its suffix names a format we write, else `TableError`."""
    path = Path(path)
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        raise TableError(f"{path}: figure suffix must be one of {', '.join(FIGURE_SUFFIXES)}")
    return path


def _new_figure() -> tuple[Figure, Axes]:
    """A figure on its own Agg canvas (no pyplot), laid out by constrained layout."""
    figure = Figure(figsize=FIGSIZE_IN, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _new_axes(x: str, y: str) -> tuple[Figure, Axes]:
    """Size (log) against accuracy (%) axes with paper-style grid lines."""
    figure, axes = _new_figure()
    axes.set_xscale("log")
    axes.set_xlabel(AXIS_LABELS[x])
    axes.set_ylabel(AXIS_LABELS[y])
    axes.grid(True, which="major", color="0.9")
    axes.grid(True, which="minor", color="0.96")
    axes.set_axisbelow(True)
    axes.margins(y=0.08)  # head room for the labels of the top front points
    if size_unit(x) == "MiB":  # 0.1, 1, 10 rather than powers of ten
        axes.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    return figure, axes


def _finish(figure: Figure, axes: Axes, title: str) -> None:
    """Title, legend outside the data area, then freeze the layout so label boxes stay valid."""
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    figure.canvas.draw()
    figure.set_layout_engine("none")


def _draw_dense(axes: Axes, labels: Mapping[float, str], x: str) -> None:
    """Dashed vertical line per dense fp32 size, its label written along it."""
    for size, label in labels.items():
        axes.axvline(size, color="0.35", linestyle="--", linewidth=1.0, zorder=1, gid=GID_DENSE)
        axes.text(size, 0.03, f"{label} ({format_size(size, x)}) ", rotation=90, fontsize=8,
                  ha="right", va="bottom", color="0.25", transform=axes.get_xaxis_transform())


def _draw_best_edge_popup(axes: Axes, rows: pd.DataFrame, x: str, y: str) -> list[tuple[float, float]]:
    """Star at the most accurate N = 1 trial (smallest on ties); returns its (size, %) or []."""
    edge_popup = rows[rows[COATS] == 1].sort_values([y, x], ascending=[False, True], kind="stable")
    if edge_popup.empty:
        return []
    best = edge_popup.iloc[0]
    point = (float(best[x]), 100 * float(best[y]))
    axes.scatter(*point, marker="*", s=170, color="gold", edgecolors="black", linewidths=0.7, zorder=5,
                 label=f"best edge-popup (N=1): {point[1]:.1f} %", gid=GID_EDGE_POPUP)
    return [point]


def _draw_seed_ranges(
    axes: Axes, rows: pd.DataFrame, front: pd.DataFrame, x: str, y: str
) -> list[tuple[float, float, float]]:
    """Accuracy range (min..max) of each front point's configuration, if it was run several times.

    Returns the bars drawn as (size, low %, high %).
    """
    config = rows.groupby(parameter_columns(rows), dropna=False, sort=False)[y]
    spread = pd.DataFrame({"low": config.transform("min"), "high": config.transform("max"),
                           "runs": config.transform("size")})
    repeated = spread.loc[front.index].query("runs > 1")
    if repeated.empty:
        return []
    accuracy = front.loc[repeated.index, y]
    axes.errorbar(front.loc[repeated.index, x], 100 * accuracy,
                  yerr=100 * np.vstack([accuracy - repeated["low"], repeated["high"] - accuracy]),
                  fmt="none", ecolor="0.35", elinewidth=0.8, capsize=2, zorder=3,
                  label="range over seeds", gid=GID_SEED_RANGE)
    sizes = front.loc[repeated.index, x]
    return list(zip(sizes, 100 * repeated["low"], 100 * repeated["high"]))


def _label_coat_counts(axes: Axes, front: pd.DataFrame, x: str, y: str, obstacles: list[Bbox]) -> None:
    """Write "N=k" once per coat count, at its smallest point on the front.

    Each label takes the first nearby offset where it stays inside the axes and
    clears every point, bar, text and earlier label; a label with no such place
    is dropped rather than put far from its point (the legend still tells the
    colours apart).
    """
    renderer = _renderer(axes.figure)
    inside = axes.get_window_extent(renderer)
    taken = list(obstacles)
    for _, row in front.drop_duplicates(COATS).iterrows():
        for dx, dy in _LABEL_OFFSETS_PT:
            label = axes.annotate(
                f"N={row[COATS]:.0f}", (row[x], 100 * row[y]), xytext=(dx, dy), textcoords="offset points",
                ha="left" if dx > 0 else "right" if dx < 0 else "center", va="bottom" if dy > 0 else "top",
                fontsize=8, color="0.15", zorder=6, gid=GID_COAT_LABEL,
            )
            box = label.get_window_extent(renderer).padded(2)
            if _within(box, inside) and not any(box.overlaps(other) for other in taken):
                taken.append(box)
                break
            label.remove()


def _marker_box(axes: Axes, size: float, low_pct: float, high_pct: float | None = None) -> Bbox:
    """Display-space box around a marker at (size, low %), or a bar from low % to high %."""
    (left, bottom), (right, top) = axes.transData.transform(
        [(size, low_pct), (size, low_pct if high_pct is None else high_pct)])
    radius = _MARKER_RADIUS_PT * axes.figure.dpi / 72
    return Bbox.from_extents(left - radius, bottom - radius, right + radius, top + radius)


def _within(box: Bbox, outer: Bbox) -> bool:
    return outer.x0 <= box.x0 and box.x1 <= outer.x1 and outer.y0 <= box.y0 and box.y1 <= outer.y1


def _coat_colour(coats: float) -> tuple[float, float, float, float]:
    """One fixed colour per coat count N, the same in every figure."""
    return colormaps["tab10"](int(coats - 1) % 10)


def _renderer(figure: Any) -> Any:
    """The renderer of a figure of this module: each is drawn on its own Agg canvas."""
    return cast(FigureCanvasAgg, figure.canvas).get_renderer()
