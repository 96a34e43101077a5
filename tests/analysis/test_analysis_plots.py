"""Figures: drawn from the data they claim, every format, labels that do not collide."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest
from analysis_fixtures import make_table
from matplotlib.collections import LineCollection

from msup.analysis.examples import synthetic_trials
from msup.analysis.pareto import pareto_front
from msup.analysis.plots import (
    GID_COAT_LABEL,
    GID_DENSE,
    GID_DOMINATED,
    GID_EDGE_POPUP,
    GID_FRONT_LINE,
    GID_FRONT_POINTS,
    GID_SEED_RANGE,
    compare_figure,
    hypervolume_figure,
    pareto_figure,
    save_figure,
)
from msup.analysis.table import TableError


@pytest.fixture(scope="module")
def trials():
    return synthetic_trials(n_trials=300, seed=5)


def artists(figure, gid: str) -> list:
    return list(figure.findobj(lambda artist: artist.get_gid() == gid))


def one(figure, gid: str):
    found = artists(figure, gid)
    assert len(found) == 1, f"{len(found)} artists with gid {gid}"
    return found[0]


@pytest.mark.parametrize("x", ["size_entropy_mib", "size_paper_mib", "size_artifact_bytes"])
@pytest.mark.parametrize("y", ["val_acc", "test_acc"])
def test_pareto_figure_draws_the_front_and_only_complete_trials(trials, x: str, y: str) -> None:
    figure = pareto_figure(trials, x, y)
    front = pareto_front(trials, x, y)
    complete = trials[(trials["state"] == "COMPLETE") & trials[y].notna()]
    points = one(figure, GID_FRONT_POINTS).get_offsets()
    assert sorted(map(tuple, points.tolist())) == sorted(zip(front[x], 100 * front[y]))
    assert len(one(figure, GID_FRONT_LINE).get_xdata()) == len(front)
    assert len(one(figure, GID_DOMINATED).get_offsets()) == len(complete) - len(front)
    dense = one(figure, GID_DENSE).get_xdata()[0]
    assert dense == pytest.approx(trials["dense_mib"].max() * (2**20 if x == "size_artifact_bytes" else 1))
    star = one(figure, GID_EDGE_POPUP).get_offsets()[0]
    best = complete[complete["coats"] == 1][y].max()
    assert star[1] == pytest.approx(100 * best)
    axes = figure.axes[0]
    assert axes.get_xscale() == "log"
    assert ("bytes" if x == "size_artifact_bytes" else "MiB") in axes.get_xlabel()
    assert "%" in axes.get_ylabel()


@pytest.mark.parametrize("seed", [0, 3, 5, 11])
def test_coat_labels_do_not_overlap_each_other_or_the_points(seed: int) -> None:
    trials = synthetic_trials(n_trials=300, seed=seed)
    figure = pareto_figure(trials)
    renderer = figure.canvas.get_renderer()
    labels = artists(figure, GID_COAT_LABEL)
    assert labels, "at least one coat count is labelled"
    assert len(labels) <= trials["coats"].nunique()
    boxes = [label.get_window_extent(renderer) for label in labels]
    assert not any(a.overlaps(b) for a, b in combinations(boxes, 2))
    axes = figure.axes[0]
    for x, y in one(figure, GID_FRONT_POINTS).get_offsets():
        px, py = axes.transData.transform((x, y))
        assert not any(box.x0 <= px <= box.x1 and box.y0 <= py <= box.y1 for box in boxes)
    assert {label.get_text() for label in labels} <= {f"N={n}" for n in range(1, 6)}


def test_seed_ranges_span_the_repeats_of_a_front_configuration() -> None:
    table = make_table([
        {"seed": 0, "lr": 0.1, "val_acc": 0.80, "size_entropy_mib": 1.0},
        {"seed": 1, "lr": 0.1, "val_acc": 0.70, "size_entropy_mib": 1.1},
        {"seed": 0, "lr": 0.2, "val_acc": 0.60, "size_entropy_mib": 0.5},
    ])
    (bars,) = [bar for bar in artists(pareto_figure(table), GID_SEED_RANGE) if isinstance(bar, LineCollection)]
    (segment,) = bars.get_segments()
    assert segment[:, 1].tolist() == pytest.approx([70.0, 80.0])


def test_no_edge_popup_marker_without_a_complete_n1_trial() -> None:
    table = make_table([{"coats": 2}, {"coats": 1, "state": "PRUNED"}])
    assert artists(pareto_figure(table), GID_EDGE_POPUP) == []


def test_compare_overlays_one_front_per_study(trials) -> None:
    other = synthetic_trials(n_trials=200, seed=9)
    figure = compare_figure({"first": trials, "second": other})
    for name, table in (("first", trials), ("second", other)):
        assert len(one(figure, f"{GID_FRONT_LINE}:{name}").get_xdata()) == len(pareto_front(table))
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == ["first", "second"]
    with pytest.raises(TableError):
        compare_figure({})


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_every_format_is_written(tmp_path: Path, trials, suffix: str) -> None:
    path = save_figure(pareto_figure(trials), tmp_path / "sub" / f"front{suffix}")
    assert path.stat().st_size > 1000
    magic = {".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}[suffix]
    assert path.read_bytes().startswith(magic)


def test_unknown_format_is_refused_before_writing(tmp_path: Path, trials) -> None:
    with pytest.raises(TableError, match="suffix"):
        save_figure(pareto_figure(trials), tmp_path / "front.jpg")
    assert list(tmp_path.iterdir()) == []


def test_hypervolume_figure_has_one_line_per_study() -> None:
    import pandas as pd

    histories = {"a": pd.DataFrame({"trial": [0, 2], "trial_epochs": [5, 10], "elapsed_s": [60.0, 150.0],
                                    "hypervolume": [0.1, 0.3]}),
                 "b": pd.DataFrame({"trial": [1], "trial_epochs": [4], "elapsed_s": [30.0], "hypervolume": [0.2]})}
    epochs, clock = hypervolume_figure(histories, (0.0, 40.0), "size_entropy_mib").axes
    assert [line.get_label() for line in epochs.get_lines()] == ["a", "b"]
    assert epochs.get_lines()[0].get_xdata().tolist() == [5, 10]  # against compute, not the trial index
    assert epochs.get_lines()[0].get_ydata().tolist() == [0.1, 0.3]
    assert clock.get_lines()[0].get_xdata().tolist() == [1.0, 2.5]  # minutes
    assert "trial-epochs" in epochs.get_xlabel() and "minutes" in clock.get_xlabel()


def test_hypervolume_figure_without_times_has_the_compute_panel_alone() -> None:
    import pandas as pd

    history = pd.DataFrame({"trial": [0], "trial_epochs": [5], "elapsed_s": [float("nan")], "hypervolume": [0.1]})
    assert len(hypervolume_figure({"a": history}, (0.0, 40.0), "size_entropy_mib").axes) == 1
