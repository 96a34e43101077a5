"""`msup pareto NAME --out front.html`: a self-contained interactive page, drawn by a real headless Chromium.

Chromium comes from Debian's package (`.ci/run` installs it); where it is
missing, the browser test is skipped with the reason and the file is still checked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from msup.cli import main

pytest.importorskip("plotly", reason="plotly is not installed (pip install -e '.[html]')")
COMPLETE_POINTS = 5  # study_dir: five COMPLETE trials (the pruned and failed ones are not drawn)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium; .ci/run installs it)")
    return found


def rendered(page: Path, *extra: str) -> subprocess.CompletedProcess:
    """Open ``page`` in headless Chromium and let its JavaScript run (virtual time: no race with rendering)."""
    return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                           *extra, page.as_uri()], capture_output=True, text=True, timeout=180)


def test_the_page_is_self_contained_with_hover_text_for_every_point(study_dir: Path, tmp_path: Path, capsys) -> None:
    page = tmp_path / "front.html"
    assert main(["pareto", str(study_dir), "--out", str(page)]) == 0
    assert f"wrote pareto: {page}" in capsys.readouterr().out
    html = page.read_text()
    assert not re.search(r"<script[^>]+src=\"https?:", html)  # plotly.js is inlined: opens without a network
    hover = "trial 2<br>coats 2<br>val_acc 80.00%<br>size_entropy_mib 0.6 MiB".replace("<", "\\u003c").replace(">", "\\u003e")
    assert html.count(hover) == 1  # in the page's data as JSON writes it
    assert '"name":"front"' in html and '"name":"other trials"' in html  # legend entries, each toggles its trace
    assert (tmp_path / "hypervolume.png").read_bytes().startswith(b"\x89PNG") and (tmp_path / "pareto.csv").exists()


def test_chromium_draws_every_complete_trial_and_a_screenshot(study_dir: Path, tmp_path: Path) -> None:
    page = tmp_path / "front.html"
    assert main(["pareto", str(study_dir), "--out", str(page)]) == 0
    dom = rendered(page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert len(re.findall(r'<path class="point', dom.stdout)) == COMPLETE_POINTS  # the SVG plotly.js drew
    shot = tmp_path / "front.png"
    taken = rendered(page, "--window-size=1200,800", f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000


def test_compare_draws_each_study_with_its_own_front_and_trials(compared, tmp_path: Path) -> None:
    page = tmp_path / "both.html"
    assert compared(page) == 0
    html = page.read_text()
    assert all(f'"name":"{name}: {kind}"' in html for name in ("good", "other") for kind in ("front", "other trials"))
    dom = rendered(page, "--dump-dom")
    assert len(re.findall(r'<path class="point', dom.stdout)) == 2 * COMPLETE_POINTS


def test_hover_names_the_sparsities_and_learning_rate(tmp_path: Path) -> None:
    from analysis_fixtures import make_table

    make_table([{"coats": 2, "sparsity_1": 0.5, "sparsity_2": 0.9, "lr": 0.05, "val_acc": 0.8, "size_entropy_mib": 0.6}]
               ).to_csv(tmp_path / "trials.csv", index=False)
    assert main(["pareto", str(tmp_path), "--out", str(tmp_path / "front.html")]) == 0
    assert "coats 2\\u003cbr\\u003esparsities 0.5, 0.9\\u003cbr\\u003elr 0.05\\u003cbr\\u003eval_acc 80.00%" in \
        (tmp_path / "front.html").read_text()
