"""Fail points: the rule syntax, one-line refusals, hit counts shared between processes, and each action."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from msup import failpoints
from msup.cli import main
from msup.errors import InputError


def test_rules_parse_with_and_without_a_hit():
    rules = failpoints.parse("trial.after_epoch@3=kill_driver; searcher.before_tell=pause;")
    assert rules == {
        "trial.after_epoch": [failpoints.Rule("trial.after_epoch", 3, "kill_driver")],
        "searcher.before_tell": [failpoints.Rule("searcher.before_tell", None, "pause")],
    }


@pytest.mark.parametrize("text, says", [
    ("trial.after_epok@1=raise", "'trial.after_epok' in 'trial.after_epok@1=raise' is not a fail point"),
    ("trial.after_epoch@1=explode", "action 'explode'"),
    ("trial.after_epoch@0=raise", "hit '0'"),
    ("trial.after_epoch@x=raise", "hit 'x'"),
    ("trial.after_epoch", "action ''"),
])
def test_a_malformed_value_is_refused_in_one_line(monkeypatch, capsys, text, says):
    with pytest.raises(InputError, match="MSUP_FAILPOINTS"):
        failpoints.parse(text)
    monkeypatch.setenv(failpoints.ENV, text)
    assert main(["size", "--model", "mlp", "--coats", "1", "--sparsities", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("msup: error: MSUP_FAILPOINTS: ") and says in err and err.count("\n") == 1


def test_unset_points_do_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv(failpoints.ENV, raising=False)
    monkeypatch.setenv(failpoints.DIR_ENV, str(tmp_path))
    for point in failpoints.POINTS:
        failpoints.reach(point)
    assert list(tmp_path.iterdir()) == []  # not even a hit count is written


def test_raise_fires_on_the_named_hit_only(monkeypatch, tmp_path):
    monkeypatch.setenv(failpoints.ENV, "study.before_tables@2=raise")
    monkeypatch.setenv(failpoints.DIR_ENV, str(tmp_path))
    failpoints.reach("study.before_tables")
    failpoints.reach("study.between_tables")  # another point: not counted against this rule
    with pytest.raises(failpoints.FailPointError, match=r"study.before_tables@2"):
        failpoints.reach("study.before_tables")
    failpoints.reach("study.before_tables")


def test_hits_are_counted_across_processes(monkeypatch, tmp_path):
    """The driver and every trial worker share one count: the rule fires once, in whichever process is third."""
    monkeypatch.setenv(failpoints.ENV, "trial.after_epoch@3=raise")
    monkeypatch.setenv(failpoints.DIR_ENV, str(tmp_path))
    code = "from msup import failpoints; failpoints.reach('trial.after_epoch')"
    outcomes = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True) for _ in range(4)]
    assert [o.returncode for o in outcomes] == [0, 0, 1, 0]
    assert "FailPointError: fail point trial.after_epoch@3" in outcomes[2].stderr
    assert (tmp_path / "trial.after_epoch.hits").read_text() == "4"


def test_kill_worker_kills_the_process_that_reaches_the_point(monkeypatch, tmp_path):
    monkeypatch.setenv(failpoints.ENV, "trial.after_epoch=kill_worker")
    monkeypatch.setenv(failpoints.DIR_ENV, str(tmp_path))
    code = "from msup import failpoints; failpoints.reach('trial.after_epoch'); print('survived')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == -9 and "survived" not in done.stdout


def test_pause_holds_until_its_go_file_appears(monkeypatch, tmp_path):
    monkeypatch.setenv(failpoints.ENV, "searcher.before_tell@1=pause")
    monkeypatch.setenv(failpoints.DIR_ENV, str(tmp_path))
    passed = threading.Event()

    def tell() -> None:
        failpoints.reach("searcher.before_tell")
        passed.set()

    worker = threading.Thread(target=tell)
    worker.start()
    paused = tmp_path / "searcher.before_tell@1.paused"
    while not paused.exists():  # written by the paused thread before it waits
        assert worker.is_alive()
        worker.join(0.05)
    assert not passed.is_set()
    (tmp_path / "searcher.before_tell@1.go").touch()
    worker.join(10)
    assert passed.is_set()
