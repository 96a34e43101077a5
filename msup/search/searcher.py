"""A Ray Tune searcher that asks and tells a two-objective Optuna study directly.

Why not Ray's `OptunaSearch`: msup must compute a trial's size when it is
sampled, tell stopped-early trials PRUNED (not COMPLETE), record failures with
their reason, and recover trials a dead driver asked for but Ray never saved.
The Optuna storage is the source of truth; everything this object remembers
can be rebuilt from it.

Recovery rule: a RUNNING Optuna trial that no Ray trial of this run owns is an
*orphan* (its driver died between ask and Ray's next experiment checkpoint).
Ray asks for a replacement trial in that case, and the searcher hands it the
orphan's parameters, and its newest checkpoint from an earlier Ray run of the
study if there is one, instead of asking Optuna anew: nothing lost, nothing
twice. The same path rebuilds a study whose Ray experiment state is damaged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search import Searcher

from msup import failpoints
from msup.errors import InputError
from msup.search.pruning import PRUNED_ATTR, SHADOW_ATTR
from msup.search.sizing import SizeCache
from msup.search.storage import count_trials, load_or_create, open_storage
from msup.search.study_config import StudyConfig

CHECKPOINT_FILE = "checkpoint.pt"  # inside each Ray checkpoint folder
VALUES_ATTR = "values"  # sampled parameters incl. derived sparsities
# Accuracy per epoch, {"1": 0.41, ...}. Not Optuna intermediate values: multi-objective TPE
# crashes on a PRUNED trial that has them (it asks the study for its single direction).
CURVE_ATTR = "curve"
RAY_ATTR = "ray_trial_id"
ERROR_ATTR = "error"
RESULT_KEYS = (
    "epoch", "val_acc", "best_val_acc", "test_acc", "best_test_acc", "train_loss", "train_acc",
    "size_artifact_bytes", "wall_s",
)


class StudySearcher(Searcher):
    """Suggests trial configs from an Optuna study and reports outcomes back to it."""

    def __init__(self, config: StudyConfig, storage_url: str, folder: str) -> None:
        super().__init__()  # objectives live in the Optuna study; Ray checks no metric names
        self._config = config
        self._storage_url = storage_url
        self._folder = folder  # the study folder: artifacts/ and the checkpoints of earlier Ray runs
        self._owned: dict[str, int] = {}  # Ray trial id -> Optuna trial number
        self._study: optuna.Study | None = None
        self._sizes = SizeCache()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_study": None}

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            storage = open_storage(self._storage_url)
            self._study = load_or_create(
                storage, self._config.name, [self._config.accuracy, self._config.size],
                self._config.build_sampler(trials_so_far=count_trials(storage, self._config.name)),
            )
        return self._study

    # --- Ray Tune's Searcher interface ---------------------------------------------------

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        orphan, resume_from = self._take_orphan(), None
        if orphan is not None and VALUES_ATTR in orphan.user_attrs:
            resume_from = latest_checkpoint(Path(self._folder), orphan.number)
            number, values = orphan.number, orphan.user_attrs[VALUES_ATTR]
            sizes = {k: orphan.user_attrs[k] for k in ("size_paper_mib", "size_entropy_mib", "dense_mib")}
            train = self._config.train_config(values)
        else:  # a new trial, or one a dead driver had only begun to sample (its drawn values are kept)
            trial = self.study.ask() if orphan is None else optuna.Trial(self.study, orphan._trial_id)
            failpoints.reach("searcher.after_ask")
            number, values = trial.number, self._config.space.sample(trial)
            try:
                train = self._config.train_config(values)
            except InputError as exc:  # the space was checked up front; keep the study alive regardless
                trial.set_user_attr(ERROR_ATTR, str(exc))
                self.study.tell(trial, state=TrialState.FAIL)
                return None
            sizes = self._sizes.sizes(train)
            for key, value in {**sizes, VALUES_ATTR: values}.items():
                trial.set_user_attr(key, value)
            failpoints.reach("searcher.after_attrs")
        self._set_attr(number, RAY_ATTR, trial_id)
        self._owned[trial_id] = number
        return {
            "optuna_trial": number,
            "train": train.to_dict(),
            "values": values,
            "sizes": sizes,
            "epochs": train.optim.epochs,
            "cpus": self._config.cpu,
            "memory_bytes": self._config.memory_bytes,
            "artifact_path": str(Path(self._folder) / "artifacts" / f"{number:05d}.msup"),
            "resume_from": resume_from,
        }

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        number = self._owned.get(trial_id)
        if number is not None:
            self._record_epoch(number, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        number = self._owned.pop(trial_id, None)
        if number is None or error:  # a raised error is told FAIL, with its message, by `FailureRecorder`
            return
        frozen = self._frozen(number)
        if frozen.state.is_finished():
            return
        if result:
            self._record_epoch(number, result)
            for key in RESULT_KEYS:
                if isinstance(result.get(key), (int, float)) and math.isfinite(result[key]):
                    self.study._storage.set_trial_user_attr(frozen._trial_id, key, result[key])
        state, values = self._outcome(frozen, result)
        failpoints.reach("searcher.before_tell")
        finish_shadow(self.study, frozen, state)
        self.study.tell(number, values, state=state)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w", encoding="utf-8") as f:
            json.dump({"owned": self._owned}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, encoding="utf-8") as f:
            self._owned = {str(k): int(v) for k, v in json.load(f)["owned"].items()}

    # --- internals -----------------------------------------------------------------------

    def _outcome(self, frozen: FrozenTrial, result: Mapping[str, Any] | None) -> tuple[TrialState, list[float] | None]:
        """COMPLETE only for a trial that trained every epoch and was tested; stopped early is PRUNED.

        A trial whose training failed reports ``error`` and ends FAIL with that message.
        """
        result = result or {}
        if result.get(ERROR_ATTR):
            self._set_attr(frozen.number, ERROR_ATTR, str(result[ERROR_ATTR]))
            return TrialState.FAIL, None
        accuracy, size = result.get(self._config.accuracy), result.get(self._config.size, frozen.user_attrs.get(self._config.size))
        finished = result.get("test_acc") is not None and PRUNED_ATTR not in frozen.user_attrs
        if finished and accuracy is not None and size is not None and math.isfinite(accuracy):
            return TrialState.COMPLETE, [float(accuracy), float(size)]
        return (TrialState.PRUNED if result.get("epoch") else TrialState.FAIL), None

    def _record_epoch(self, number: int, result: Mapping[str, Any]) -> None:
        if "epoch" not in result or self._config.accuracy not in result:  # e.g. a failed trial's error report
            return
        trial_id = self._trial_id(number)
        value = result[self._config.accuracy]
        frozen = self.study._storage.get_trial(trial_id)
        if isinstance(value, (int, float)) and math.isfinite(value) and not frozen.state.is_finished():
            curve = frozen.user_attrs.get(CURVE_ATTR, {})
            self.study._storage.set_trial_user_attr(trial_id, CURVE_ATTR, {**curve, str(int(result["epoch"])): float(value)})

    def _take_orphan(self) -> FrozenTrial | None:
        owned = set(self._owned.values())
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.number not in owned:
                return trial
        return None

    def _trial_id(self, number: int) -> int:
        return self.study._storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)

    def _frozen(self, number: int) -> FrozenTrial:
        return self.study._storage.get_trial(self._trial_id(number))

    def _set_attr(self, number: int, key: str, value: Any) -> None:
        self.study._storage.set_trial_user_attr(self._trial_id(number), key, value)


def latest_checkpoint(folder: Path, number: int) -> str | None:
    """The newest epoch checkpoint any earlier Ray run of the study saved for Optuna trial ``number``."""
    found = folder.glob(f"ray/run-*/trial-{number:05d}-*/checkpoint_*/{CHECKPOINT_FILE}")
    newest = max(found, key=lambda p: (int(p.parent.name.split("_")[-1]), p.stat().st_mtime), default=None)
    return None if newest is None else str(newest)


def finish_shadow(study: optuna.Study, frozen: FrozenTrial, state: TrialState) -> None:
    """Close the pruning shadow trial of a main trial that ended other than COMPLETE."""
    shadow_id = frozen.user_attrs.get(SHADOW_ATTR)
    if shadow_id is None or state == TrialState.COMPLETE:
        return
    if not study._storage.get_trial(shadow_id).state.is_finished():
        study._storage.set_trial_state_values(shadow_id, TrialState.PRUNED if state == TrialState.PRUNED else TrialState.FAIL)


def record_failure(study: optuna.Study, number: int, message: str) -> None:
    """Tell FAIL, with the error message, for a trial whose worker raised (after Ray's retries)."""
    storage = study._storage
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    frozen = storage.get_trial(trial_id)
    if frozen.state.is_finished():
        return
    storage.set_trial_user_attr(trial_id, ERROR_ATTR, message)
    finish_shadow(study, frozen, TrialState.FAIL)
    study.tell(number, state=TrialState.FAIL)
