"""The Pareto front as a self-contained interactive HTML page (plotly, an optional extra: ``pip install plotly``).

`msup pareto NAME --out front.html` writes it. Each study gets two traces, its
front (a step line through its points) and its other COMPLETE trials; a click
on a legend entry shows or hides a trace. Hovering a point shows its trial
number, coats, sparsities, learning rate, accuracy and sizes. Size is on a log
axis, accuracy in %, as in the PNG figure. plotly.js is inlined, so the file
opens anywhere without a network.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import cycle
from pathlib import Path

import pandas as pd

from msup.analysis.pareto import mark_front
from msup.analysis.plots import AXIS_LABELS
from msup.analysis.table import (
    COATS,
    SIZE_ENTROPY_MIB,
    SIZE_PAPER_MIB,
    TRIAL,
    TableError,
    complete_trials,
    format_size,
)

LR = "lr"
GID_FRONT, GID_OTHERS = "front", "other trials"  # trace names end with these: "<study>: front"
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def write_front_html(studies: Mapping[str, pd.DataFrame], x: str, y: str, path: Path) -> Path:
    """Write the fronts of ``studies`` (name -> trials) as one HTML page; `TableError` without plotly."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise TableError("an .html figure needs plotly: pip install plotly (or msup's 'html' extra)") from None
    figure = go.Figure()
    for (name, trials), colour in zip(studies.items(), cycle(_COLOURS)):
        rows = complete_trials(trials, x, y)
        on_front = mark_front(rows, x, y)
        front = rows[on_front].sort_values([x, TRIAL], kind="stable")
        others = rows[~on_front]
        prefix = f"{name}: " if len(studies) > 1 else ""
        figure.add_trace(go.Scatter(
            x=front[x], y=100 * front[y], mode="lines+markers", line={"shape": "hv", "color": colour},
            marker={"size": 9, "color": colour}, name=prefix + GID_FRONT,
            customdata=_hover_data(front, x, y), hovertemplate=_HOVER,
        ))
        figure.add_trace(go.Scatter(
            x=others[x], y=100 * others[y], mode="markers", name=prefix + GID_OTHERS,
            marker={"size": 6, "color": colour, "opacity": 0.35},
            customdata=_hover_data(others, x, y), hovertemplate=_HOVER,
        ))
    figure.update_layout(
        title=" vs ".join(studies) if len(studies) > 1 else f"Pareto front: {next(iter(studies))}",
        xaxis={"title": AXIS_LABELS[x], "type": "log"}, yaxis={"title": AXIS_LABELS[y]},
        template="plotly_white", legend={"itemclick": "toggle"}, hovermode="closest",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.write_html(path, include_plotlyjs=True, full_html=True)
    return path


_HOVER = "%{customdata}<extra></extra>"


def _hover_data(rows: pd.DataFrame, x: str, y: str) -> list[str]:
    """One line of text per point: trial, coats, sparsities, learning rate, accuracy and both sizes."""
    sparsities = sorted((c for c in rows.columns if c.startswith("sparsity_")), key=lambda c: int(c.split("_")[1]))
    texts = []
    for _, row in rows.iterrows():
        parts = [f"trial {int(row[TRIAL])}", f"coats {int(row[COATS])}" if pd.notna(row[COATS]) else "coats ?"]
        shown = [f"{row[c]:.4g}" for c in sparsities if pd.notna(row[c])]
        if shown:
            parts.append("sparsities " + ", ".join(shown))
        if LR in rows.columns and pd.notna(row[LR]):
            parts.append(f"lr {row[LR]:.3g}")
        parts.append(f"{y} {100 * row[y]:.2f}%")
        for size in dict.fromkeys((x, SIZE_ENTROPY_MIB, SIZE_PAPER_MIB)):
            if size in rows.columns and pd.notna(row[size]):
                parts.append(f"{size} {format_size(row[size], size)}")
        texts.append("<br>".join(parts))
    return texts

