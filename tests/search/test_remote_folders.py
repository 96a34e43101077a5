"""A study folder in object storage: files through pyarrow's S3 client, refusals before anything starts, reports.

Against a real S3-protocol server on loopback (`servers.s3_endpoint`); the
study that runs, is killed and resumes there is in tests/faults/test_object_storage.py.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from studykit import write_study

from msup.cli import main
from msup.folder import Folder, FolderError, hide_credentials, split_file


@pytest.fixture
def bucket(s3: str) -> str:
    from servers import new_bucket

    return new_bucket()


def test_a_folder_in_object_storage_reads_writes_lists_and_copies(bucket, tmp_path):
    folder = Folder(f"s3://{bucket}/runs/alpha")
    assert folder.is_remote and folder.local is None and folder.name == "alpha" and not folder.exists("study.yaml")
    assert folder.children() == []  # no such prefix yet: nothing, not an error
    assert folder.write_text("study.yaml", "name: alpha\n") == f"s3://{bucket}/runs/alpha/study.yaml"
    (tmp_path / "model.msup").write_bytes(b"\x00\x01" * 1000)
    location = (folder / "artifacts").upload(tmp_path / "model.msup", "00001.msup")
    assert folder.read_text("study.yaml") == "name: alpha\n" and folder.is_file("study.yaml")
    assert folder.children() == ["artifacts", "study.yaml"] and Folder(f"s3://{bucket}/runs").children() == ["alpha"]
    parent, name = split_file(location)
    assert parent == folder / "artifacts" and name == "00001.msup"
    assert parent.download(name, tmp_path / "back" / name).read_bytes() == b"\x00\x01" * 1000
    with pytest.raises(FileNotFoundError):
        folder.read_bytes("trials.csv")


def test_a_missing_bucket_is_an_error_that_names_the_folder_and_no_credentials(s3):
    folder = Folder("s3://msup-test-no-such-bucket/runs")
    with pytest.raises(FolderError, match=r"^s3://msup-test-no-such-bucket/runs: cannot write study.yaml"):
        folder.write_text("study.yaml", "name: x\n")
    assert hide_credentials("s3://KEY:SECRET@bucket/runs?endpoint_override=x") == "s3://bucket/runs"
    assert Folder("s3://KEY:SECRET@bucket/runs").shown == "s3://bucket/runs"


def test_a_local_folder_behaves_the_same(tmp_path):
    folder = Folder(tmp_path / "runs" / "alpha")
    folder.write_text("study.yaml", "name: alpha\n")
    assert folder.local == tmp_path / "runs" / "alpha" and folder.children() == ["study.yaml"]
    assert not list(folder.local.glob("*.partial"))


@pytest.mark.parametrize("storage, shown", [
    (None, "the default SQLite file"),
    ("sqlite:////tmp/x.db", "storage 'sqlite:////tmp/x.db'"),
    ("/shared/optuna.journal", "storage '/shared/optuna.journal'"),
])
def test_a_study_in_object_storage_refuses_a_storage_that_cannot_live_there(bucket, tmp_path, capsys, storage, shown):
    extra = {"storage": storage} if storage else {}
    path = write_study(tmp_path, "remote", runs_dir=f"s3://{bucket}/runs", **extra)  # the study file's runs_dir
    assert main(["study", "launch", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"msup: error: study folder s3://{bucket}/runs/remote is in object storage, where {shown} "
                            "cannot live: set storage (or --storage) to a database") and error.count("\n") == 1
    assert Folder(f"s3://{bucket}/runs").children() == []  # refused before anything was written


def test_pareto_reads_a_study_in_object_storage_and_writes_its_figures_there(bucket, capsys):
    folder = Folder(f"s3://{bucket}/runs/beta")
    table = pd.DataFrame({
        "trial": [0, 1, 2], "state": "COMPLETE", "coats": 1, "val_acc": [0.6, 0.8, 0.7], "best_val_acc": [0.6, 0.8, 0.7],
        "test_acc": [0.6, 0.8, 0.7], "size_paper_mib": 0.1, "size_entropy_mib": [0.02, 0.05, 0.08],
        "size_artifact_bytes": 1000, "dense_mib": 1.0,
    })
    folder.write_text("trials.csv", table.to_csv(index=False))
    assert main(["pareto", "beta", "--runs-dir", f"s3://{bucket}/runs"]) == 0
    out = capsys.readouterr().out
    assert "Pareto front of beta: 2 trials" in out and f"wrote pareto: s3://{bucket}/runs/beta/pareto.png" in out
    assert set(folder.children()) == {"trials.csv", "pareto.png", "hypervolume.png", "pareto.csv"}
    assert folder.read_bytes("pareto.png").startswith(b"\x89PNG")
    assert list(pd.read_csv(io.BytesIO(folder.read_bytes("pareto.csv")))["trial"]) == [0, 1]


def test_pareto_of_a_missing_remote_study_is_one_line(bucket, capsys):
    assert main(["pareto", f"s3://{bucket}/runs/none"]) == 2
    assert capsys.readouterr().err == f"msup: error: no study 's3://{bucket}/runs/none': not a folder with trials.csv, " \
                                      f"nor one under {Path('runs').resolve()}/\n"


def test_list_reads_the_studies_of_a_runs_folder_in_object_storage(bucket, capsys):
    runs = Folder(f"s3://{bucket}/runs")
    (runs / "gamma").write_text("study.yaml", "name: gamma\nsearch_space: {parameters: {lr: 0.1}}\n"
                                "storage: postgresql://nobody@127.0.0.1:1/none\n")
    (runs / "no-study").write_text("notes.txt", "not a study\n")
    assert main(["study", "list", "--runs-dir", runs.uri, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["study"], row["folder"], row["driver_running"]) for row in rows] == [
        ("gamma", f"s3://{bucket}/runs/gamma", False)]
    assert "cannot connect" in rows[0]["error"]
