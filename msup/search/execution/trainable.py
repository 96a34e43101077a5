"""The Ray Tune side of one trial: train, report every epoch with a checkpoint, write the model file."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import resource
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune
from ray.tune import Callback

from msup import failpoints
from msup.artifact import save_model
from msup.config import TrainConfig
from msup.errors import InputError, RunError, is_disk_full, last_line
from msup.folder import split_file
from msup.search.execution.searcher import CHECKPOINT_FILE, epoch_marker, record_failure
from msup.search.execution.trial_config import TrialConfig
from msup.search.state.keys import ERROR_ATTR
from msup.search.state.ledger import driver_ledger
from msup.search.state.storage import load_stored_study
from msup.train import Trainer

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
DISK_FULL_ATTR = "disk_full"  # a trial's last result when it could not write its checkpoint or model file


def run_trial(config: dict[str, Any]) -> None:
    """Function trainable: resumes from Ray's last checkpoint, or from ``resume_from``, if there is one.

    A failure of the training itself (diverged loss, bad config, missing data,
    out of memory) is reported as the trial's last result under ``error``
    instead of raised, so Ray does not retry something that fails the same way
    every time; a dying worker still raises and is retried by Ray's
    ``FailureConfig``. A full disk is reported under ``disk_full``: the driver
    then stops the study, leaving the trial to continue on resume.
    """
    spec = TrialConfig.from_dict(config)
    torch.set_num_threads(max(1, int(spec.cpus)))
    if spec.memory_bytes:
        gc.collect()  # what an earlier trial of this (reused) worker left
        limit_memory(int(spec.memory_bytes))
    node = ray.get_runtime_context().get_node_id()  # which machine trained it, for cluster runs
    try:
        trainer = Trainer(TrainConfig.from_dict(spec.train))
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                trainer.load_checkpoint(Path(folder) / CHECKPOINT_FILE)
        elif spec.resume_from:  # a trial recovered from an earlier Ray run of the study
            with _local_copy(spec.resume_from) as path:
                trainer.load_checkpoint(path)
        epochs, reported = trainer.config.optim.epochs, False
        every_s, saved = float(spec.checkpoint_every_s or 0.0), time.monotonic()
        for metrics in trainer.epochs():
            failpoints.reach("trial.before_checkpoint")
            report = {**metrics, **spec.sizes, "node_id": node}
            last = metrics["epoch"] == epochs
            if last:
                report.update(_final_metrics(trainer, spec.artifact_path))
            if last or time.monotonic() - saved >= every_s:
                _report(trainer, report)
                saved = time.monotonic()
            else:
                tune.report(report)  # the pruner decides from it; a crash resumes from the last checkpoint
            failpoints.reach("trial.after_epoch")
            reported = True
        if not reported:  # resumed from the last epoch's checkpoint: its final report was lost
            _report(trainer, {**trainer.history[-1], **_final_metrics(trainer, spec.artifact_path)})
        failpoints.reach("trial.after_final_report")
    except (RunError, InputError) as exc:
        tune.report({ERROR_ATTR: f"{type(exc).__name__}: {exc}"})
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        # Not the trial's fault: the driver ends the run (`runner.StopOnFullDisk`) and the trial, unfinished, continues
        # from its last checkpoint on `msup study resume` once there is space again.
        tune.report({DISK_FULL_ATTR: f"{exc.strerror or exc} ({exc.filename or 'writing a checkpoint or model file'})"})
        threading.Event().wait()


def limit_memory(trial_bytes: int) -> None:
    """Let this trial allocate at most ``trial_bytes`` of private memory beyond what its worker holds now.

    A trial that needs more fails with "out of memory" instead of waking the kernel's OOM
    killer on a node that other trials share. The cap (RLIMIT_DATA, Linux) is set afresh for
    each trial, so a reused worker's own growth does not eat into the next trial's share;
    allocations of 1 MiB and more are mapped apart and unmapped when freed (glibc would
    otherwise keep them in its heap), so a trial that ran out of memory gives it all back.
    """
    held = _private_bytes()
    if held is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    soft = held + trial_bytes
    resource.setrlimit(resource.RLIMIT_DATA, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if hasattr(libc, "mallopt"):  # glibc
        libc.mallopt(_M_MMAP_THRESHOLD, 2**20)


def _private_bytes() -> int | None:
    """This process's data segment as RLIMIT_DATA counts it (VmData), or None off Linux."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmData:")), None)


@contextmanager
def _local_copy(location: str) -> Iterator[Path]:
    """A file of the study folder on this machine: itself if local, else downloaded for the time being."""
    folder, name = split_file(location)
    if folder.local is not None:
        yield folder.local / name
        return
    with tempfile.TemporaryDirectory() as staging:
        yield folder.download(name, Path(staging) / name)


def _final_metrics(trainer: Trainer, artifact_path: str) -> dict[str, float]:
    """Test the trained network and write its model file (from this worker, also into object storage)."""
    result = trainer.finish()
    (folder, name), size_bytes = split_file(artifact_path), 0
    if trainer.spec.mask is not None:
        with tempfile.TemporaryDirectory() as staging:
            path = (folder.local or Path(staging)) / name
            folder.make()
            save_model(trainer.model, trainer.spec, path)
            size_bytes = path.stat().st_size
            folder.upload(path, name)
    return {
        "test_acc": result.test_acc,
        "best_test_acc": result.best_test_acc,
        "size_artifact_bytes": size_bytes,
        "wall_s": result.wall_s,
    }


def _report(trainer: Trainer, metrics: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        trainer.save_checkpoint(Path(folder) / CHECKPOINT_FILE)
        (Path(folder) / epoch_marker(trainer.epoch)).touch()
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


# Ray's words when its saved experiment state names a checkpoint it has since deleted (it keeps one per trial,
# and saves its state every 10 s or more): nothing is wrong with the trial, only Ray cannot restore it.
RAY_CHECKPOINT_GONE = "Could not recover from checkpoint as it does not exist"


class FailureRecorder(Callback):
    """Tells FAIL, with Ray's error message, for trials whose worker raised past all retries.

    A trial Ray could not restore after a crash of the driver is left unfinished instead:
    the next run of `msup study resume` adopts it and continues it from its newest
    checkpoint on disk (`StudySearcher`'s orphan path).
    """

    def __init__(self, storage_url: str, study_name: str, size: str) -> None:
        self._storage_url = storage_url
        self._study_name = study_name
        self._size = size

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        spec = TrialConfig.of(trial)
        if spec is None:
            return
        error = trial.get_error()
        if RAY_CHECKPOINT_GONE in str(error):
            return
        message = last_line(error) if error else "the trial's worker failed"
        study = load_stored_study(self._storage_url, self._study_name)
        record_failure(driver_ledger(self._storage_url, study, self._size), spec.optuna_trial, message)
