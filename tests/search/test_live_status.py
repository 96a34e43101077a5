"""`msup study status --watch`: the frame it draws, and a real watch left with Ctrl-C."""

from __future__ import annotations

import shutil
import signal
import subprocess

import optuna
import sessions
from optuna.trial import TrialState, create_trial
from studykit import MSUP, msup_env, write_study

from msup.cli.live import render
from msup.search.state.storage import default_storage_url, load_or_create, open_storage


def test_a_frame_shows_progress_counts_running_trials_and_the_front():
    budget = {"trials": {"limit": 40, "spent": 10, "left": 30}}
    info = {
        "study": "digits", "folder": "runs/digits", "budget": budget, "done": 10, "elapsed_s": 312.0, "eta_s": 936.0,
        "driver_running": True, "driver": "host a, pid 7, since 2026-12-01 10:00:00 UTC",
        "counts": {"COMPLETE": 6, "PRUNED": 3, "FAIL": 1, "RUNNING": 2},
        "running": [{"trial": 11, "epoch": 4, "epochs": 20, "val_acc": 0.8123}],
        "front": [{"trial": 3, "val_acc": 0.9812, "size_entropy_mib": 0.0061}],
    }
    lines = render(info).splitlines()
    assert lines[0] == "study digits (runs/digits); driver running (host a, pid 7, since 2026-12-01 10:00:00 UTC)"
    assert lines[1] == f"[{'#' * 8}{'-' * 22}] 10/40 trials  25%   elapsed 5m 12s   ETA 15m 36s"
    assert lines[2] == "COMPLETE 6 · PRUNED 3 · FAIL 1 · RUNNING 2"
    assert lines[3:] == ["running:", "  trial    11  epoch   4/20  val_acc 0.8123",
                         "front (1 of 1, smallest first):", "  trial=3  val_acc=0.9812  size_entropy_mib=0.0061"]


def test_the_bar_follows_the_limit_nearest_its_end():
    budget = {"trials": {"limit": 200, "spent": 20, "left": 180},
              "trial_epochs": {"limit": 1200, "spent": 600, "left": 600}}
    info = {"study": "digits", "folder": "runs/digits", "budget": budget, "done": 20, "elapsed_s": 60.0,
            "eta_s": 60.0, "driver_running": False, "counts": {"COMPLETE": 20}, "running": [], "front": []}
    assert render(info).splitlines()[1] == f"[{'#' * 15}{'-' * 15}] 20/200 trials, 600/1,200 trial-epochs  50%   elapsed 1m 00s"


def test_watch_redraws_a_study_until_ctrl_c_and_leaves_it_as_it_was(tmp_path):
    runs = tmp_path / "runs"
    (runs / "live").mkdir(parents=True)
    shutil.move(write_study(tmp_path, "live", trials=5, epochs=4), runs / "live" / "study.yaml")
    study = load_or_create(open_storage(default_storage_url(runs / "live")), "live", ["val_acc", "size_entropy_mib"],
                           optuna.samplers.RandomSampler(seed=0))
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.9, 0.01]))
    running = study.ask()
    for key, value in {"curve.1": 0.5, "curve.2": 0.625, "values": {"lr": 0.1}}.items():
        running.set_user_attr(key, value)
    before = [(t.number, t.state) for t in study.get_trials()]
    watcher = sessions.start([MSUP, "study", "status", "live", "--watch", "--every", "0.2"], env=msup_env(runs),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    frame = []
    for line in watcher.stdout:  # the first whole frame; then Ctrl-C
        frame.append(line.rstrip("\n"))
        if line.startswith("(every 0.2 s"):
            break
    watcher.send_signal(signal.SIGINT)
    assert watcher.wait(timeout=60) == 0, watcher.stderr.read()
    assert frame[1].startswith("[" + "#" * 6 + "-" * 24 + "] 1/5 trials  20%")
    assert "running:" in frame and "  trial     1  epoch   2/4  val_acc 0.6250" in frame
    assert [(t.number, t.state) for t in study.get_trials()] == before
