"""`Study`: a study in a notebook, without glue code.

    from msup import Study
    study = Study.load("digits")            # a name under the runs folder, a folder, or s3://... URI
    study.trials                            # every trial, read live from the Optuna storage
    study.budget                            # each limit (trials, trial-epochs, hours) spent and left
    study.front()                           # the COMPLETE trials no other beats in accuracy and size
    study.plot()                            # the Pareto figure (matplotlib; inline in Jupyter)
    best = study.best(max_size_mib=0.01)    # the most accurate trial within a size
    model = study.model(best.trial)         # its network, decoded from its model file

The table is the one `trials.csv` holds (`msup.analysis.table`), built from the
storage at each access, so it is current while a driver runs.
"""

from __future__ import annotations

import tempfile
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from msup.analysis.table import SIZE_ENTROPY_MIB, VAL_ACC, validate_trials
from msup.errors import InputError
from msup.folder import Folder
from msup.search.state.layout import ARTIFACTS_DIR, artifact_name

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from matplotlib.figure import Figure
    from torch import nn

    from msup.search.config.study import StudyConfig


class Study:
    """One study: its resolved config, its folder, and its trials from the storage."""

    def __init__(self, folder: Folder, config: StudyConfig, storage_url: str) -> None:
        self.folder, self.config, self._storage_url = folder, config, storage_url

    @classmethod
    def load(cls, name_or_folder: str | PathLike[str], runs_dir: str | Path | None = None) -> Study:
        """The study of a name under ``runs_dir`` (default ``$MSUP_RUNS``, else ``runs``), a folder or a URI."""
        from msup.search.state.storage import study_storage_url
        from msup.search.study import find_study_dir, load_study_folder

        folder = find_study_dir(str(name_or_folder), runs_dir)
        config = load_study_folder(folder)
        return cls(folder, config, study_storage_url(folder, config.storage))

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def trials(self) -> pd.DataFrame:
        """Every trial, one row each, in trial order: the columns of `trials.csv`."""
        from msup.search.state.table import trials_table

        return trials_table(self._optuna_study(), self.config.accuracy)

    @property
    def budget(self) -> dict[str, dict[str, float]]:
        """Each limit of the study (trials, trial_epochs, trial_hours, hours) with what is spent and left."""
        from msup.search.study import budget_progress

        return budget_progress(self._optuna_study(), self.config)

    def front(self, x: str = SIZE_ENTROPY_MIB, y: str = VAL_ACC) -> pd.DataFrame:
        """The Pareto front of the COMPLETE trials (accuracy ``y`` up, size ``x`` down), smallest first."""
        from msup.analysis.pareto import pareto_front

        return pareto_front(self._validated(), x, y)

    def plot(self, x: str = SIZE_ENTROPY_MIB, y: str = VAL_ACC) -> Figure:
        """The Pareto figure `msup pareto` draws, as a matplotlib figure."""
        from msup.analysis.plots import pareto_figure

        return pareto_figure(self._validated(), x, y, name=self.name)

    def best(self, max_size_mib: float | None = None, x: str = SIZE_ENTROPY_MIB, y: str = VAL_ACC) -> pd.Series:
        """The most accurate COMPLETE trial, within ``max_size_mib`` of size ``x`` if given (the smaller on a tie)."""
        front = self.front(x, y)
        if max_size_mib is not None:
            front = front[front[x] <= max_size_mib]
        if front.empty:
            within = "" if max_size_mib is None else f" within {max_size_mib:g} MiB of {x}"
            raise InputError(f"study {self.name!r} has no COMPLETE trial{within}")
        return front.sort_values([y, x], ascending=[False, True], kind="stable").iloc[0]

    def model(self, trial: int, device: str = "cpu") -> nn.Module:
        """The network of a COMPLETE trial, rebuilt from its model file (eval mode, on ``device``)."""
        from msup.artifact import load_model

        artifacts, name = self.folder / ARTIFACTS_DIR, artifact_name(int(trial))
        if not artifacts.is_file(name):
            raise InputError(f"study {self.name!r}: trial {trial} has no model file ({artifacts}/{name}); "
                             "only COMPLETE trials of a supermask have one")
        if artifacts.local is not None:
            return load_model(artifacts.local / name, device)[0]
        with tempfile.TemporaryDirectory() as scratch:
            return load_model(artifacts.download(name, Path(scratch) / name), device)[0]

    def __repr__(self) -> str:
        table = self.trials
        counts = table["state"].value_counts().to_dict() if not table.empty else {}
        shown = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
        from msup.search.state.account import describe

        return f"Study({self.name!r}, {self.folder.shown}: {shown or 'no trials'}; budget spent: {describe(self.budget)})"

    def _optuna_study(self) -> optuna.Study:
        from msup.search.state.storage import load_stored_study

        return load_stored_study(self._storage_url, self.name)

    def _validated(self) -> pd.DataFrame:
        table = self.trials
        if table.empty:
            raise InputError(f"study {self.name!r} has no trials yet")
        return validate_trials(table, source=f"study {self.name!r}")
