"""The results table of a study, ``runs/<name>/trials.csv``: its one definition.

One row per Optuna trial. Columns:

=====================  ====================================================
``trial``              Optuna trial number (integer, unique); the trial order
``ray_trial_id``       Ray Tune's id for the same trial (text)
``state``              ``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``,
                       ``REJECTED`` (outside the study's size budget: never
                       trained), ``WAITING`` (enqueued, not started) or
                       ``PAUSED`` (set aside by a pruner with its
                       checkpoint, to resume when sampling ends)
``enqueued``           its index in the study file's ``enqueue:`` list;
                       empty for a configuration the sampler drew
parameters             every sampled parameter in its own column: ``coats``
                       (N, integer >= 1), ``sparsity_1`` .. ``sparsity_N``
                       (empty beyond the trial's coat count), ``scale_init``,
                       ``init_scale``, ``lr``, ...
``seed``               optional; rows that differ only in ``seed`` repeat one
                       configuration
``epochs``             epochs trained
``val_acc``            final validation accuracy, fraction 0..1
``best_val_acc``       best validation accuracy over epochs, fraction 0..1
``test_acc``           test accuracy, fraction 0..1
``size_paper_mib``     size under the paper's accounting, MiB (2^20 bytes)
``size_entropy_mib``   entropy-bound size, MiB
``size_artifact_bytes``  bytes of the saved, entropy-coded model file
``dense_mib``          the same network stored dense in fp32, MiB
``compression``        compression ratio against dense fp32
``wall_s``             wall-clock seconds a COMPLETE trial trained and was tested
``train_s``            training seconds through its highest epoch (every
                       trained trial; what ``budget: {trial_hours}`` counts)
``start_time``         when the trial was sampled (the driver's local time,
                       ISO 8601)
``end_time``           when it ended; empty while it runs
``stopped_by``         why it ended before its last epoch or was never
                       trained (text): ``pruner <name>: <reason>``,
                       ``budget: <limit> spent``, ``failure`` (see
                       ``error``), ``size_budget`` (see ``rejected``),
                       ``paused by pruner <name>: <reason>`` (PAUSED);
                       empty for a trial that trained every epoch
``error``              why a FAIL trial failed (text)
``rejected``           why a REJECTED configuration was not trained (text)
=====================  ====================================================

Cells may be empty (a pruned trial has no test accuracy). Only the columns in
`REQUIRED_COLUMNS` must exist; analysis ignores COMPLETE rows that lack the
accuracy or size it is asked about.
"""

from __future__ import annotations

import math
from os import PathLike
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# pandas is imported inside the functions: `msup` builds every command's
# arguments from the constants here at start-up, which must stay fast.
TRIAL, RAY_TRIAL_ID, STATE, COATS, SEED = "trial", "ray_trial_id", "state", "coats", "seed"
EPOCHS, DENSE_MIB, COMPRESSION, WALL_S, TRAIN_S = "epochs", "dense_mib", "compression", "wall_s", "train_s"
START_TIME, END_TIME, STOPPED_BY = "start_time", "end_time", "stopped_by"
ERROR, REJECTED_REASON, ENQUEUED = "error", "rejected", "enqueued"
VAL_ACC, BEST_VAL_ACC, TEST_ACC = "val_acc", "best_val_acc", "test_acc"
SIZE_PAPER_MIB, SIZE_ENTROPY_MIB = "size_paper_mib", "size_entropy_mib"
SIZE_ARTIFACT_BYTES = "size_artifact_bytes"

ACCURACY_COLUMNS = (VAL_ACC, BEST_VAL_ACC, TEST_ACC)
SIZE_COLUMNS = (SIZE_ENTROPY_MIB, SIZE_PAPER_MIB, SIZE_ARTIFACT_BYTES)
COMPLETE, PRUNED, FAIL, RUNNING, REJECTED, WAITING = "COMPLETE", "PRUNED", "FAIL", "RUNNING", "REJECTED", "WAITING"
PAUSED = "PAUSED"
STATES = (COMPLETE, PRUNED, FAIL, RUNNING, REJECTED, WAITING, PAUSED)

REQUIRED_COLUMNS = (TRIAL, STATE, COATS, *ACCURACY_COLUMNS, *SIZE_COLUMNS, DENSE_MIB)
NUMERIC_COLUMNS = (*REQUIRED_COLUMNS[2:], TRIAL, SEED, EPOCHS, COMPRESSION, WALL_S, TRAIN_S, ENQUEUED)
TIME_COLUMNS = (START_TIME, END_TIME)
# Identifiers and free text: read verbatim, whatever their characters (a Ray id such as
# "00123456" or "12345e67" is not a number). An empty cell is the only missing value.
TEXT_COLUMNS = (RAY_TRIAL_ID, STOPPED_BY, ERROR, REJECTED_REASON)
# Columns that are outcomes or bookkeeping, not part of a trial's configuration.
NON_PARAMETER_COLUMNS = frozenset(
    (TRIAL, RAY_TRIAL_ID, STATE, SEED, EPOCHS, *ACCURACY_COLUMNS, *SIZE_COLUMNS,
     DENSE_MIB, COMPRESSION, WALL_S, TRAIN_S, *TIME_COLUMNS, STOPPED_BY, ERROR, REJECTED_REASON, ENQUEUED)
)
BYTES_PER_MIB = 1024**2


class TableError(ValueError):
    """The results table (or the request about it) is unusable; nothing was written."""


def load_trials(path: str | PathLike[str] | IO[bytes], source: str | None = None) -> pd.DataFrame:
    """Read and validate a ``trials.csv`` (a path, or its bytes from ``source``); `TableError` with a one-line reason."""
    import pandas as pd

    source = source or str(path)
    try:
        # Only an empty cell is missing: the writer leaves nothing else empty, and text such as
        # "NA" or "None" in an error message stays text.
        frame = pd.read_csv(path, dtype={name: str for name in TEXT_COLUMNS}, keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise TableError(f"{source}: no such file") from None
    except pd.errors.EmptyDataError:
        raise TableError(f"{source}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise TableError(f"{source}: not a readable CSV table ({str(exc).strip()})") from None
    return validate_trials(frame, source=source)


def validate_trials(frame: pd.DataFrame, source: str = "table") -> pd.DataFrame:
    """Check the contract above and return a copy with numeric columns as numbers.

    ``source`` names the table in error messages and is kept in ``attrs["source"]``.
    """
    if frame.empty:
        raise TableError(f"{source}: the table has no rows")
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        raise TableError(f"{source}: missing column(s) {', '.join(missing)}")
    trials = frame.copy()
    for name in NUMERIC_COLUMNS:
        if name in trials.columns:
            trials[name] = _as_numbers(trials[name], name, source)
    for name in TIME_COLUMNS:
        if name in trials.columns:
            trials[name] = _as_times(trials[name], name, source)
    states = trials[STATE].astype("string").str.strip()
    bad = ~states.isin(STATES).fillna(False).astype(bool)
    if bad.any():
        _fail(source, trials, bad, STATE, f"is not one of {', '.join(STATES)}")
    trials[STATE] = states.astype(str)
    _check(source, trials, TRIAL, trials[TRIAL].isna() | (trials[TRIAL] % 1 != 0), "must be an integer")
    _check(source, trials, TRIAL, trials[TRIAL].duplicated(), "repeats an earlier trial number")
    trials[TRIAL] = trials[TRIAL].astype("int64")
    coats = trials[COATS]
    complete = trials[STATE] == COMPLETE
    bad_coats = (coats.isna() & complete) | (coats.notna() & ((coats < 1) | (coats % 1 != 0)))
    _check(source, trials, COATS, bad_coats, "must be an integer >= 1 for a COMPLETE trial")
    for name in ACCURACY_COLUMNS:
        _check(source, trials, name, (trials[name] < 0) | (trials[name] > 1), "must be a fraction in 0..1")
    for name in (*SIZE_COLUMNS, DENSE_MIB):
        _check(source, trials, name, trials[name] <= 0, "must be a positive size")
    trials.attrs["source"] = source
    return trials


def complete_trials(trials: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """COMPLETE rows that have both size ``x`` and accuracy ``y``, in trial order.

    Raises `TableError` when there is none, so no empty figure gets drawn.
    """
    check_axes(x, y)
    rows = trials[(trials[STATE] == COMPLETE) & trials[x].notna() & trials[y].notna()]
    if rows.empty:
        source = trials.attrs.get("source", "table")
        raise TableError(f"{source}: no COMPLETE trial with both {y} and {x}")
    return rows.sort_values(TRIAL, kind="stable")


def check_axes(x: str, y: str) -> None:
    """Reject a size or accuracy column name that is not part of the contract."""
    if x not in SIZE_COLUMNS:
        raise TableError(f"size column {x!r} is not one of {', '.join(SIZE_COLUMNS)}")
    if y not in ACCURACY_COLUMNS:
        raise TableError(f"accuracy column {y!r} is not one of {', '.join(ACCURACY_COLUMNS)}")


def parameter_columns(trials: pd.DataFrame) -> list[str]:
    """Columns that together identify a configuration (everything sampled, not ``seed``)."""
    return [name for name in trials.columns if name not in NON_PARAMETER_COLUMNS]


def size_unit(x: str) -> str:
    """Unit of a size column: ``"bytes"`` or ``"MiB"``."""
    return "bytes" if x == SIZE_ARTIFACT_BYTES else "MiB"


def format_size(size: float, x: str, with_unit: bool = True) -> str:
    """A size of column ``x`` for people: "42.61 MiB" or "44,679,680 bytes"."""
    number = f"{size:,.0f}" if size_unit(x) == "bytes" else f"{size:.4g}"
    return f"{number} {size_unit(x)}" if with_unit else number


def dense_size(trials: pd.DataFrame, x: str) -> float | None:
    """Dense fp32 size of the study's network in the unit of column ``x``, or None if unknown.

    The largest ``dense_mib`` is used if rows disagree (they should not).
    """
    dense_mib = trials[DENSE_MIB].max()
    if math.isnan(dense_mib):
        return None
    return float(dense_mib) * (BYTES_PER_MIB if size_unit(x) == "bytes" else 1.0)


def _as_numbers(column: pd.Series, name: str, source: str) -> pd.Series:
    import pandas as pd

    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna() & column.notna() & (column.astype("string").str.strip() != "")
    if bad.any():
        _fail(source, column.to_frame(), bad, name, "is not a number")
    return numbers


def _as_times(column: pd.Series, name: str, source: str) -> pd.Series:
    import pandas as pd

    times = pd.to_datetime(column, errors="coerce", format="ISO8601")
    bad = times.isna() & column.notna() & (column.astype("string").str.strip() != "")
    if bad.any():
        _fail(source, column.to_frame(), bad, name, "is not an ISO 8601 time")
    return times


def _check(source: str, trials: pd.DataFrame, name: str, bad: pd.Series, problem: str) -> None:
    bad = bad.fillna(False).astype(bool)
    if bad.any():
        _fail(source, trials, bad, name, problem)


def _fail(source: str, trials: pd.DataFrame, bad: pd.Series, name: str, problem: str) -> None:
    position = int(bad.to_numpy().argmax())  # the first bad row
    value = trials[name].iloc[position]
    # Line 1 of the CSV is the header, so row i sits on line i + 2.
    raise TableError(f"{source} line {position + 2}: {name} = {value!r} {problem}")
