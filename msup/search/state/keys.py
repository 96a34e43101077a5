"""Every attribute msup stores on an Optuna trial or study: one name each, written and read through here.

These names are a storage contract: studies written by earlier versions of
msup are read with them, so a key is renamed only with a reader for the old one
(as ``LEGACY_CURVE_ATTR`` shows).
"""

from __future__ import annotations

# User attribute ``curve.<epoch>`` of a main trial: the accuracy after that epoch, one small write per epoch.
# Not Optuna intermediate values: multi-objective TPE crashes on a PRUNED trial that has them.
CURVE_PREFIX = "curve."
LEGACY_CURVE_ATTR = "curve"  # studies written before per-epoch keys: one dict attribute, {"1": 0.41, ...}
VALUES_ATTR = "values"  # a main trial's sampled parameters, derived sparsities included
SIZE_ATTRS = ("size_entropy_mib", "size_paper_mib", "dense_mib")  # a main trial's sizes, known when sampled
RAY_ATTR = "ray_trial_id"  # the Ray trial that trains it (the latest, after a recovery)
PRUNED_ATTR = "pruned_at_epoch"  # the epoch a pruner (or a time budget) stopped the trial at
STOPPED_BY_ATTR = "stopped_by"  # who stopped it early and why: "pruner size_aware: ...", "budget: ..."
PAUSED_ATTR = "paused_at_epoch"  # a doubtful trial set aside at this epoch (its checkpoint kept), still RUNNING
PAUSED_BY_ATTR = "paused_by"  # the pruner's reason for the pause
RESUMED_ATTR = "resumed_at_epoch"  # a paused trial taken up again from this epoch: never paused twice
TRAIN_S_ATTR = "train_s"  # a main trial's training seconds through its highest reported epoch
ERROR_ATTR = "error"  # why a trial failed (also the key of a failed trial's last Ray result)
REJECTED_ATTR = "rejected"  # why a sampled configuration was never trained (outside the size budget);
# its outcome is REJECTED, and in the storage it is PRUNED with its size constraint violated
BUDGET_CONSTRAINT = "size_budget"  # the constraint each trial of a size-budgeted study is told: > 0 outside
ENQUEUED_ATTR = "enqueued"  # a trial the study file's enqueue: list asked for: its index in that list
SHADOW_ATTR = "shadow_trial_id"  # a main trial's shadow trial's storage id (`execution.scheduler`)
SIZE_ATTR = "size"  # a shadow trial's size objective

CLOCK_ATTR = "driver_s"  # study attribute: seconds its drivers ran, over all resumes
ENQUEUED_ALL_ATTR = "enqueued_all"  # study attribute: every enqueue: entry is in the storage
