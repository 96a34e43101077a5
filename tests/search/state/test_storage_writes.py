"""Several attributes of a trial in one write: read back alike from every storage, all or none on a database."""

from __future__ import annotations

import optuna
import pytest
from studykit import unique_name

from msup.search.state.storage import load_or_create, open_storage, set_user_attrs

ATTRS = {"size_entropy_mib": 0.0195, "values": {"coats": 3, "lr": 0.1}, "ray_trial_id": "a1b2"}


@pytest.fixture(params=["sqlite", "journal", "postgresql"])
def storage_url(request, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgres")
    return f"sqlite:///{tmp_path / 'optuna.db'}" if request.param == "sqlite" else str(tmp_path / "journal.log")


def test_attributes_written_together_read_back_as_written(storage_url: str) -> None:
    name = unique_name("attrs")
    study = load_or_create(open_storage(storage_url), name, ["val_acc", "size_entropy_mib"], optuna.samplers.RandomSampler())
    trial = study.ask()
    set_user_attrs(study._storage, trial._trial_id, ATTRS)
    set_user_attrs(study._storage, trial._trial_id, {"ray_trial_id": "c3d4"})  # a key written again is replaced
    stored = optuna.load_study(study_name=name, storage=open_storage(storage_url)).trials[0].user_attrs
    optuna.delete_study(study_name=name, storage=open_storage(storage_url))
    assert stored == {**ATTRS, "ray_trial_id": "c3d4"}


def test_a_failed_write_stores_none_of_its_attributes(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = load_or_create(open_storage(url), "partial", ["val_acc", "size_entropy_mib"], optuna.samplers.RandomSampler())
    trial = study.ask()
    with pytest.raises(TypeError, match="not JSON serializable"):
        set_user_attrs(study._storage, trial._trial_id, {"size_entropy_mib": 0.02, "values": object()})
    assert optuna.load_study(study_name="partial", storage=url).trials[0].user_attrs == {}
