"""Experiment trackers for a study's trials, through Ray Tune's own logger callbacks.

Study file::

    loggers:
      mlflow: {tracking_uri: sqlite:///mlflow.db, experiment: digits, tags: {team: vision}}
      wandb: {project: msup, group: digits, tags: [vision]}
      tensorboard: {}

(or ``loggers: [mlflow, wandb, tensorboard]`` with the defaults). One run per
trial in each tracker: its sampled parameters and Optuna trial number (MLflow
params, W&B config), every epoch's accuracy, loss and the three sizes as
metrics, its final state (``COMPLETE``, ``PRUNED`` or ``FAIL``) as
``msup.state`` (an MLflow tag, a W&B config key), and its model file as an
artifact. ``tracking_uri`` defaults to ``$MLFLOW_TRACKING_URI``; ``experiment``
and ``project`` to the study's name. W&B reads its own variables
(``WANDB_API_KEY``, ``WANDB_MODE=offline``, ``WANDB_DIR``). ``tensorboard``
writes event files into every trial's folder (``tensorboard --logdir
<study>/ray``); it is off unless named, since writing them costs the driver a
few milliseconds per epoch report. Ray Tune's
``result.json`` and ``progress.csv`` are always written (its ``ResultGrid``
and ``Tuner.restore`` read them). The driver talks to the tracker, so it must
be reachable from the driver's machine.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from msup.folder import split_file
from msup.search.execution.trial_config import TrialConfig

STATE_TAG = "msup.state"
_METRICS = ("epoch", "val_acc", "best_val_acc", "train_loss", "train_acc", "lr", "test_acc", "best_test_acc",
            "size_paper_mib", "size_entropy_mib", "dense_mib", "size_artifact_bytes", "wall_s")


def tracker_callbacks(loggers: Mapping[str, Mapping[str, Any]], study: str) -> list[Any]:
    """The Ray Tune logger callbacks of a study: Ray's JSON and CSV files, and those its ``loggers`` name.

    Ray adds its default loggers (TensorBoard's among them) unless
    ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS`` is set, as `runner.connect` does.
    """
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

    callbacks: list[Any] = [JsonLoggerCallback(), CSVLoggerCallback()]
    if "tensorboard" in loggers:
        callbacks.append(TBXLoggerCallback())
    if "mlflow" in loggers:
        options = loggers["mlflow"]
        tags = {"msup.study": study, **{str(k): str(v) for k, v in (options.get("tags") or {}).items()}}
        callbacks.append(_mlflow_callback_class()(options.get("tracking_uri"), tags=tags,
                                                  experiment_name=options.get("experiment") or study))
    if "wandb" in loggers:
        options = loggers["wandb"]
        extra = {key: options[key] for key in ("entity", "tags") if options.get(key) is not None}
        callbacks.append(_wandb_callback_class()(project=options.get("project") or study,
                                                 group=options.get("group") or study, **extra))
    return callbacks


def final_state(result: Mapping[str, Any], failed: bool = False) -> str:
    """A finished Ray trial's outcome as the study records it: tested after its last epoch, stopped early, or failed."""
    if failed or result.get("error"):
        return "FAIL"
    return "COMPLETE" if result.get("test_acc") is not None else "PRUNED"


def _mlflow_callback_class() -> type:
    """Ray's MLflow callback, logging msup's parameters, metrics, state and model file (imported only when used)."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class StudyMLflowCallback(MLflowLoggerCallback):
        def log_trial_start(self, trial: Any) -> None:
            spec = TrialConfig.of(trial)
            if trial not in self._trial_runs and spec is not None:
                tags = {**(self.tags or {}), "trial_name": str(trial), "msup.optuna_trial": str(spec.optuna_trial)}
                run = self.mlflow_util.start_run(tags=tags, run_name=spec.run_name)
                self._trial_runs[trial] = run.info.run_id
                self.mlflow_util.log_params(run_id=self._trial_runs[trial], params_to_log=spec.tracked_params())

        def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
            """One batch per epoch report: a single round trip to the tracking store."""
            from mlflow.entities import Metric

            step, stamp = int(result.get("epoch") or result.get("training_iteration") or 0), int(time.time() * 1000)
            metrics = [Metric(key, float(result[key]), stamp, step) for key in _METRICS
                       if isinstance(result.get(key), (int, float)) and not isinstance(result.get(key), bool)]
            _client().log_batch(self._trial_runs[trial], metrics=metrics)

        def log_trial_end(self, trial: Any, failed: bool = False) -> None:
            run_id, spec = self._trial_runs[trial], TrialConfig.of(trial)
            state = final_state(trial.last_result or {}, failed)
            _client().set_tag(run_id, STATE_TAG, state)
            if state == "COMPLETE" and spec is not None and spec.artifact_path:
                _log_model_file(run_id, spec.artifact_path)
            self.mlflow_util.end_run(run_id=run_id, status="FAILED" if state == "FAIL" else "FINISHED")

    return StudyMLflowCallback


def _wandb_callback_class() -> type:
    """Ray's W&B callback (one logging actor per trial), logging what the MLflow one does (imported only when used).

    It feeds Ray's logging actor through the callback's queue, as the callback itself does.
    """
    from ray.air.integrations.wandb import (
        WandbLoggerCallback,
        _QueueItem,
        _WandbLoggingActor,
    )

    class WrittenOutLoggingActor(_WandbLoggingActor):
        """Ray kills a logging actor, and wandb's service process with it, as soon as ``run`` returns; but
        ``wandb.finish()`` returns before that service has written the run out (an offline run file was left
        empty). Ending the service first waits for it to write everything."""

        def run(self) -> None:
            super().run()
            self._wandb.teardown()

    class StudyWandbCallback(WandbLoggerCallback):
        _logger_actor_cls = WrittenOutLoggingActor

        def log_trial_start(self, trial: Any) -> None:
            spec = TrialConfig.of(trial)
            if spec is None:
                return
            self._start_logging_actor(
                trial, [*self._exclude_results, *self.excludes, "config"],
                id=trial.trial_id, name=spec.run_name, allow_val_change=True, group=self.group, project=self.project,
                config=spec.tracked_params(), **self.kwargs,
            )

        def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
            metrics = {key: result[key] for key in _METRICS
                       if isinstance(result.get(key), (int, float)) and not isinstance(result.get(key), bool)}
            super().log_trial_result(iteration, trial, {**metrics, "training_iteration": int(result.get("epoch") or 0)})

        def log_trial_end(self, trial: Any, failed: bool = False) -> None:
            if trial not in self._trial_queues:
                return
            state = final_state(trial.last_result or {}, failed)
            self._trial_queues[trial].put((_QueueItem.RESULT, {"config": {STATE_TAG: state}}))
            spec = TrialConfig.of(trial)
            location = spec.artifact_path if spec is not None else ""
            if state == "COMPLETE" and location:
                folder, name = split_file(location)
                if folder.is_file(name):  # the logging actor uploads it after the trial ended: a copy of its own
                    model_dir = Path(trial.local_path) / "model"
                    folder.download(name, model_dir / name)
                    self._trial_queues[trial].put((_QueueItem.CHECKPOINT, str(model_dir)))
            super().log_trial_end(trial, failed)

    return StudyWandbCallback


def _client() -> Any:
    """A client of the tracking store the callback was set up with."""
    import mlflow
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=mlflow.get_tracking_uri())


def _log_model_file(run_id: str, location: str) -> None:
    """Attach a trial's ``.msup`` file to its run (fetched first where the study folder is in object storage)."""
    folder, name = split_file(location)
    if not folder.is_file(name):  # a dense baseline writes none
        return
    client = _client()
    if folder.local is not None:
        client.log_artifact(run_id, str(folder.local / name))
        return
    with tempfile.TemporaryDirectory() as scratch:
        client.log_artifact(run_id, str(folder.download(name, Path(scratch) / name)))
