"""`from msup import Study`: a real finished study read from its storage, its front, figure, best trial and model."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from studykit import write_study

from msup import Study
from msup.cli import main
from msup.errors import InputError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("notebook")
    path = write_study(root, "nb", trials=3, epochs=2, budget={"trial_epochs": 100})  # 3 trials come first
    assert main(["study", "launch", str(path), "--runs-dir", str(root / "runs")]) == 0
    return root / "runs"


def test_a_study_loads_by_name_and_its_table_is_the_one_trials_csv_holds(runs):
    study = Study.load("nb", runs)
    on_disk = pd.read_csv(runs / "nb" / "trials.csv")
    assert study.name == "nb" and list(study.trials["trial"]) == list(on_disk["trial"]) == [0, 1, 2]
    assert list(study.trials["state"]) == list(on_disk["state"])
    assert repr(study).startswith(f"Study('nb', {runs / 'nb'}: ")
    assert repr(study).endswith("; budget spent: 3/3 trials, 6/100 trial-epochs)")
    assert study.budget == {"trials": {"limit": 3, "spent": 3, "left": 0},
                            "trial_epochs": {"limit": 100, "spent": 6, "left": 94}}
    assert Study.load(runs / "nb").folder == study.folder  # by folder too


def test_front_best_plot_and_model(runs):
    study = Study.load("nb", runs)
    front = study.front()
    assert len(front) >= 1 and front["size_entropy_mib"].is_monotonic_increasing
    best = study.best()
    assert best["val_acc"] == front["val_acc"].max()
    smallest = front.iloc[0]
    assert study.best(max_size_mib=smallest["size_entropy_mib"])["trial"] == smallest["trial"]
    with pytest.raises(InputError, match="no COMPLETE trial within 1e-09 MiB"):
        study.best(max_size_mib=1e-9)
    assert isinstance(study.plot(), Figure)
    model = study.model(int(best["trial"]))
    assert not model.training and model(torch.zeros(5, 64)).shape == (5, 10)  # digits: 8x8 inputs, 10 classes
    with pytest.raises(InputError, match="trial 99 has no model file"):
        study.model(99)


def test_an_unknown_study_is_one_clear_error(runs):
    with pytest.raises(InputError, match="no study 'missing'"):
        Study.load("missing", runs)
