"""`msup pareto` and `python -m analysis.pareto`: outputs, one-line errors, import hygiene."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from analysis_fixtures import HEADER, make_table

from msup.analysis.report import write_study_report
from msup.cli import main

REPO = Path(__file__).resolve().parents[2]


def files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*") if p.is_file()}


def test_writes_figures_and_front_into_the_study_folder(study_dir: Path, capsys) -> None:
    assert main(["pareto", "good", "--runs-dir", str(study_dir.parent)]) == 0
    for name in ("pareto.png", "hypervolume.png", "pareto.csv"):
        assert (study_dir / name).stat().st_size > 0
    assert pd.read_csv(study_dir / "pareto.csv")["trial"].tolist() == [0, 2, 4]
    out = capsys.readouterr().out
    assert "Pareto front of good: 3 trials" in out and str(study_dir / "pareto.png") in out


def test_study_name_from_the_environment_and_out_path(study_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MSUP_RUNS", str(study_dir.parent))
    out = tmp_path / "figures" / "front.svg"
    assert main(["pareto", "good", "--out", str(out), "--x", "size_artifact_bytes", "--y", "test_acc"]) == 0
    assert files_under(tmp_path / "figures") == {out, out.with_name("hypervolume.svg"), out.with_name("pareto.csv")}


def test_compare_overlays_studies(compared, tmp_path: Path) -> None:
    out = tmp_path / "both.pdf"
    assert compared(out) == 0
    assert out.read_bytes().startswith(b"%PDF")
    assert pd.read_csv(tmp_path / "pareto.csv")["trial"].tolist() == [0, 2, 4]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("", "empty"),
        (f"{HEADER}\n", "no rows"),
        (f"{HEADER}\n0,PRUNED,2,0.8,0.8,0.8,1.5,1.2,1300000,42.6\n", "no COMPLETE trial"),
        ("trial,state,val_acc\n0,COMPLETE,0.5\n", "missing column"),
        (f"{HEADER}\n0,COMPLETE,2,0.8,0.8,n/a?,1.5,1.2,1300000,42.6\n", "not a number"),
    ],
)
def test_bad_tables_exit_2_with_one_line_and_write_nothing(tmp_path: Path, capsys, table: str, message: str) -> None:
    (tmp_path / "trials.csv").write_text(table)
    before = files_under(tmp_path)
    assert main(["pareto", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("msup: error: ") and message in err and err.count("\n") == 1
    assert files_under(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing-study"], "no study 'missing-study'"),
        (["good", "--compare", "absent"], "no study 'absent'"),
        (["good", "--out", "front.jpg"], "suffix"),
    ],
)
def test_bad_requests_exit_2_and_write_nothing(study_dir: Path, capsys, args: list[str], message: str) -> None:
    before = files_under(study_dir.parent.parent)
    assert main(["pareto", *args, "--runs-dir", str(study_dir.parent)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("msup: error: ") and message in err and err.count("\n") == 1
    assert files_under(study_dir.parent.parent) == before


def test_directory_without_a_table(tmp_path: Path, capsys) -> None:
    assert main(["pareto", str(tmp_path)]) == 2
    assert "no trials.csv" in capsys.readouterr().err


def test_write_study_report_for_the_launcher(study_dir: Path) -> None:
    paths = write_study_report(study_dir)
    assert paths == {"pareto": study_dir / "pareto.png", "hypervolume": study_dir / "hypervolume.png",
                     "front_csv": study_dir / "pareto.csv"}
    assert all(path.is_file() for path in paths.values())


def run_python(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_python_m_analysis_pareto(study_dir: Path) -> None:
    done = run_python("-m", "analysis.pareto", str(study_dir))
    assert done.returncode == 0, done.stderr
    assert (study_dir / "pareto.png").is_file()
    failed = run_python("-m", "analysis.pareto", str(study_dir / "nowhere"))
    assert failed.returncode == 2
    assert failed.stderr.startswith("python -m analysis.pareto: error: ") and failed.stderr.count("\n") == 1


def test_analysis_imports_neither_torch_ray_the_search_nor_pyplot() -> None:
    code = (
        "import sys, analysis, analysis.pareto, analysis.examples, msup.analysis.plots, msup.analysis.interactive\n"
        "allowed = ('msup.analysis', 'msup.errors', 'msup.folder', 'msup.version')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray') or m == 'matplotlib.pyplot'"
        " or (m.startswith('msup.') and not m.startswith(allowed))))"
    )
    done = run_python("-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_registering_the_command_stays_cheap() -> None:
    """`msup` imports every command module at start-up; this one must not pull in pandas or matplotlib."""
    code = (
        "import sys, msup.cli.pareto\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'matplotlib', 'numpy'}))"
    )
    done = run_python("-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_compare_with_a_table_of_the_best_accuracy_within_size_budgets(study_dir: Path, capsys) -> None:
    other = study_dir.parent / "other"
    other.mkdir()
    make_table([{"coats": 1, "val_acc": 0.65, "size_entropy_mib": 0.25},
                {"coats": 1, "val_acc": 0.75, "size_entropy_mib": 0.5}]).to_csv(other / "trials.csv", index=False)
    assert main(["pareto", "good", "--compare", "other", "--table", "--runs-dir", str(study_dir.parent)]) == 0
    assert (study_dir / "pareto-vs-other.png").stat().st_size > 0 and not (study_dir / "pareto.png").exists()
    budgets = pd.read_csv(study_dir / "budgets.csv")
    assert budgets["budget"].tolist() == pytest.approx([0.2, 0.3, 0.4, 0.6])  # x the smallest front size, 0.2
    assert budgets["multiple"].tolist() == [1.0, 1.5, 2.0, 3.0]
    assert budgets["good"].tolist() == [0.60, 0.60, 0.60, 0.80]
    assert budgets["other"].tolist()[1:] == [0.65, 0.65, 0.75] and math.isnan(budgets["other"][0])
    out = capsys.readouterr().out
    assert "best val_acc (%) within a size budget" in out and "1.5x" in out and "80.00" in out


def test_size_budgets_start_at_the_smallest_useful_trial(study_dir: Path) -> None:
    from msup.analysis.pareto import best_within_budgets

    chance = make_table([{"val_acc": 0.11, "size_entropy_mib": 0.01}, {"val_acc": 0.9, "size_entropy_mib": 0.5},
                         {"val_acc": 0.3, "size_entropy_mib": 0.05}])
    budgets = best_within_budgets({"a": chance})
    assert budgets["budget"].tolist() == pytest.approx([0.5, 0.75, 1.0, 1.5])  # 0.3 and 0.11 are below half of 0.9


def test_by_coats_draws_a_front_per_coat_count_and_says_where_n_above_1_is_on_the_front(study_dir: Path, capsys) -> None:
    assert main(["pareto", "good", "--by", "coats", "--table", "--runs-dir", str(study_dir.parent)]) == 0
    assert (study_dir / "pareto-by-coats.png").stat().st_size > 0 and not (study_dir / "pareto.png").exists()
    out = capsys.readouterr().out
    assert "N > 1 on the overall front: 2 of 3 points, at 0.6 MiB, 1.2 MiB" in out
    assert pd.read_csv(study_dir / "budgets.csv").columns.tolist() == ["budget", "multiple", "N=1", "N=2", "N=3"]


def test_by_coats_takes_one_study(study_dir: Path, capsys) -> None:
    assert main(["pareto", "good", "--by", "coats", "--compare", "good", "--runs-dir", str(study_dir.parent)]) == 2
    assert "leave out --compare" in capsys.readouterr().err
