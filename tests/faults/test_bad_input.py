"""Malformed input through the real `msup` command: one line naming the problem, exit code 2, nothing written.

Each row is a user mistake (or a hostile file) in a study file, a search space,
a training config, a command-line argument or a model file. The command runs
as a subprocess in an empty folder with MSUP_RUNS pointing inside it, so any
file it creates, in the runs folder or anywhere else, is caught.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from studykit import SPACE, run_msup

RUNS = "runs"
TRAIN = {"optim": {"epochs": 1, "batch_size": 128}, "runtime": {"device": "cpu"}}
STUDY = {"name": "bad", "train": TRAIN, "search_space": SPACE, "trials": 1, "max_concurrent": 1, "resources": {"cpu": 1}}
LAUNCH = ["study", "launch", "study.yaml", "--runs-dir", RUNS]
TRAIN_CMD = ["train", "train.yaml", "--out", "out"]
GARBAGE = bytes(range(256)) * 8  # invalid UTF-8, NUL bytes, control characters
# "Billion laughs": nine levels of ten aliases, 10^9 strings once expanded, 1 KB as text.
BOMB = "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else 'lol'] * 10)}]\n" for i in range(9)
)


def study(**changes: object) -> str:
    """The valid base study with top-level keys replaced (a value of ``...`` deletes the key)."""
    data = {**STUDY, **changes}
    return yaml.safe_dump({k: v for k, v in data.items() if v is not ...}, sort_keys=False)


def space_with(**params: object) -> dict:
    return {"parameters": {**SPACE["parameters"], **params}}


def _evil_pickle() -> bytes:
    class Payload:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    return pickle.dumps(Payload())


@dataclass(frozen=True)
class Case:
    args: list[str]
    names: str  # what the one-line message must contain: the key, value or file at fault
    files: dict[str, str | bytes] = field(default_factory=dict)
    model: bool = False  # also write good.msup, a valid model file, into the folder


CASES = {
    # --- study files
    "study-empty": Case(LAUNCH, "must be a YAML mapping", {"study.yaml": ""}),
    "study-binary-garbage": Case(LAUNCH, "not a readable YAML file", {"study.yaml": GARBAGE}),
    "study-list-not-mapping": Case(LAUNCH, "got list", {"study.yaml": "- name\n- bad\n"}),
    "study-yaml-bomb": Case(LAUNCH, "aliases expand", {"study.yaml": BOMB + study(description="*l8").replace("'*l8'", "*l8")}),
    "study-unknown-key": Case(LAUNCH, "trails: unknown key", {"study.yaml": study(trails=4)}),
    "study-missing-search-space": Case(LAUNCH, "search_space: required", {"study.yaml": study(search_space=...)}),
    "study-trials-wrong-type": Case(LAUNCH, "trials: 'many'", {"study.yaml": study(trials="many")}),
    "study-trials-zero": Case(LAUNCH, "trials: 0 must be", {"study.yaml": study(trials=0)}),
    "study-name-parent-dir": Case(LAUNCH, "name: '../escape'", {"study.yaml": study(name="../escape")}),
    "study-name-absolute": Case(LAUNCH, "name: '/tmp/escape'", {"study.yaml": study(name="/tmp/escape")}),
    "study-unknown-objective": Case(LAUNCH, "objectives.accuracy: 'test_acc'",
                                    {"study.yaml": study(objectives={"accuracy": "test_acc"})}),
    "study-unknown-sampler": Case(LAUNCH, "sampler", {"study.yaml": study(sampler={"name": "cmaes"})}),
    "study-fractional-gpus": Case(LAUNCH, "resources.gpu: 1.5", {"study.yaml": study(resources={"gpu": 1.5})}),
    "study-train-file-missing": Case(LAUNCH, "train: file 'absent.yaml' not found", {"study.yaml": study(train="absent.yaml")}),
    "study-train-wrong-type": Case(LAUNCH, "train.optim.lr: 'fast'",
                                   {"study.yaml": study(train={"optim": {"lr": "fast"}})}),
    # --- search spaces (a file beside the study)
    "space-low-above-high": Case(LAUNCH, "lr.low: 0.3 is above high (0.05)", {
        "study.yaml": study(search_space="space.yaml"),
        "space.yaml": yaml.safe_dump(space_with(lr={"type": "float", "low": 0.3, "high": 0.05}))}),
    "space-density-out-of-range": Case(LAUNCH, "outer_density must lie inside (0, 1)", {
        "study.yaml": study(search_space=space_with(outer_density={"type": "float", "low": 0.1, "high": 1.5}))}),
    "space-unknown-distribution": Case(LAUNCH, "lr.type: 'normal'", {
        "study.yaml": study(search_space=space_with(lr={"type": "normal", "low": 0.1, "high": 0.2}))}),
    "space-unknown-key": Case(LAUNCH, "lr.lo: unknown key", {
        "study.yaml": study(search_space=space_with(lr={"type": "float", "lo": 0.1, "low": 0.1, "high": 0.2}))}),
    "space-log-from-zero": Case(LAUNCH, "lr.low: 0 must be > 0", {
        "study.yaml": study(search_space=space_with(lr={"type": "float", "low": 0, "high": 0.2, "log": True}))}),
    "space-bare-list": Case(LAUNCH, "a list is ambiguous", {"study.yaml": study(search_space=space_with(lr=[0.1, 0.2]))}),
    "space-when-unknown-parameter": Case(LAUNCH, "refers to unknown parameter 'depth'", {
        "study.yaml": study(search_space=space_with(momentum={"type": "float", "low": 0.5, "high": 0.9,
                                                             "when": {"depth": [2]}}))}),
    "space-breaks-training-config": Case(LAUNCH, "optim.warmup_epochs", {
        "study.yaml": study(search_space=space_with(**{"optim.warmup_epochs": {"type": "int", "low": 0, "high": 3}}))}),
    "space-file-binary-garbage": Case(LAUNCH, "search_space: 'space.yaml' is not readable YAML", {
        "study.yaml": study(search_space="space.yaml"), "space.yaml": GARBAGE}),
    # --- training configs (`msup train`)
    "train-wrong-type": Case(TRAIN_CMD, "optim.lr: 'fast'", {"train.yaml": "optim: {lr: fast}\n"}),
    "train-out-of-range": Case(TRAIN_CMD, "optim.epochs: -3", {"train.yaml": "optim: {epochs: -3}\n"}),
    "train-unknown-section": Case(TRAIN_CMD, "optimizer: unknown key; did you mean optim?",
                                  {"train.yaml": "optimizer: {lr: 0.1}\n"}),
    "train-lr-beyond-float32": Case(TRAIN_CMD, "optim.lr", {"train.yaml": "optim: {lr: 1.0e+300}\n"}),
    "train-binary-garbage": Case(TRAIN_CMD, "train.yaml: not a YAML text file", {"train.yaml": GARBAGE}),
    "train-yaml-syntax-error": Case(TRAIN_CMD, "(line 2, column 1)", {"train.yaml": "optim: {lr: 0.1\n"}),
    "train-yaml-nested-too-deeply": Case(TRAIN_CMD, "nested too deeply", {"train.yaml": "[" * 20000 + "]" * 20000}),
    "train-yaml-bomb": Case(TRAIN_CMD, "aliases expand", {"train.yaml": BOMB + "optim: {lr: *l8}\n"}),
    # --- command-line arguments
    "cli-num-samples-zero": Case([*LAUNCH, "--num-samples", "0"], "--num-samples 0", {"study.yaml": study()}),
    "cli-num-samples-not-a-number": Case([*LAUNCH, "--num-samples", "lots"], "invalid int value: 'lots'",
                                         {"study.yaml": study()}),
    "cli-name-parent-dir": Case([*LAUNCH, "--name", "../../escape"], "name: '../../escape'", {"study.yaml": study()}),
    "cli-resume-parent-dir": Case(["study", "resume", "../../etc", "--runs-dir", RUNS], "'../../etc' is neither"),
    "cli-resume-absolute-path": Case(["study", "resume", "/etc", "--runs-dir", RUNS], "'/etc' is neither"),
    "cli-status-unknown-study": Case(["study", "status", "nosuch", "--runs-dir", RUNS], "no study 'nosuch'"),
    "cli-set-without-value": Case([*TRAIN_CMD, "--set", "optim.lr"],
                                  "expected SECTION.KEY=VALUE", {"train.yaml": "optim: {epochs: 1}\n"}),
    "cli-storage-folder-missing": Case(
        [*LAUNCH, "--storage", "absent/journal.log"], "'absent' does not exist", {"study.yaml": study()}),
    # --- model files
    "model-empty": Case(["inspect", "empty.msup"], "empty.msup", {"empty.msup": b""}),
    "model-binary-garbage": Case(["inspect", "garbage.msup"], "garbage.msup", {"garbage.msup": GARBAGE}),
    "model-truncated": Case(["inspect", "cut.msup"], "cut.msup", model=True),
    "model-flipped-byte": Case(["evaluate", "flipped.msup", "--data", "digits"], "flipped.msup", model=True),
    "model-unknown-data-set": Case(["evaluate", "good.msup", "--data", "nosuch"], "nosuch", model=True),
    "checkpoint-code-in-pickle": Case(  # refused without running the payload ("touch pwned")
        ["export", "evil.pt", "--out", "out.msup"], "evil.pt is not a readable msup checkpoint", {"evil.pt": _evil_pickle()}),
}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> bytes:
    from msup.artifact import save_model
    from msup.config import TrainConfig

    spec = TrainConfig().model_spec()
    path = tmp_path_factory.mktemp("model") / "good.msup"
    save_model(spec.build(), spec, path)
    return path.read_bytes()


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_refused_in_one_line(case: Case, tmp_path: Path, request) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    files = dict(case.files)
    if case.model:
        good = request.getfixturevalue("model_file")
        middle = len(good) // 2
        files.update({"good.msup": good, "cut.msup": good[:middle],
                      "flipped.msup": good[:middle] + bytes([good[middle] ^ 0xFF]) + good[middle + 1:]})
    for name, content in files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    before = sorted(folder.rglob("*"))

    result = run_msup(case.args, {**os.environ, "MSUP_RUNS": str(folder / RUNS)}, timeout=120, cwd=folder)

    message = result.stderr.strip()
    assert result.returncode == 2, f"exit {result.returncode}; stderr:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr
    assert len(message.splitlines()) == 1, f"not one line:\n{message}"
    assert message.startswith("msup") and case.names in message, message
    assert sorted(folder.rglob("*")) == before, "the command wrote files"
