import json

import pytest

from msup.cli import main

# The worked table of the design notes (MiB, paper accounting): dense, N=1 (p=0.7), N=3.
WORKED = {"conv4": (9.25, 0.29, 0.40), "resnet18": (42.63, 1.35, 1.85), "resnet50": (97.49, 3.14, 4.29)}


@pytest.mark.parametrize("model", sorted(WORKED))
def test_size_reproduces_the_worked_table(model, capsys):
    dense, one, three = WORKED[model]
    assert main(["size", "--model", model, "--sparsities", "0.7", "--format", "json"]) == 0
    n1 = json.loads(capsys.readouterr().out)
    assert main(["size", "--model", model, "--coats", "3", "--sparsities", "0.7,0.9212,0.9685", "--format", "json"]) == 0
    n3 = json.loads(capsys.readouterr().out)
    assert (round(n1["dense_mib"], 2), round(n1["paper_mib"], 2), round(n3["paper_mib"], 2)) == (dense, one, three)
    assert n3["entropy_mib"] < n3["paper_mib"]


def test_size_table_output(capsys):
    assert main(["size", "--model", "mlp", "--sparsities", "0.5,0.9"]) == 0
    out = capsys.readouterr().out
    assert "paper accounting" in out and "entropy bound" in out and "KiB" in out  # a small network: KiB, not 0.00 MiB


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "mlp", "--sparsities", "0.9,0.5"], "strictly increase"),
        (["--model", "mlp", "--sparsities", "0.5,1.2"], "sparsity_2=1.2"),
        (["--model", "mlp", "--sparsities", "0.5", "--coats", "2"], "coats=2"),
        (["--model", "mlpx", "--sparsities", "0.5"], "unknown model 'mlpx'"),
        (["--model", "mlp", "--sparsities", "0.5,x"], "comma-separated"),
        (["--model", "mlp", "--sparsities", "0.5", "--dataset", "svhn"], "unknown dataset 'svhn'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, capsys):
    assert main(["size", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["size", "--model", "mlp"])
    assert exc.value.code == 2


def test_size_of_the_1d_cnn_and_of_width_and_batchnorm_options(capsys):
    assert main(["size", "--model", "cnn1d", "--sparsities", "0.7", "--format", "json"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert full["dataset"] == "mnist1d" and full["masked_weights"] == 13_600
    assert main(["size", "--model", "cnn1d", "--width", "0.5", "--sparsities", "0.7", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["masked_weights"] == 16 * 5 + 2 * 16 * 16 * 5 + 16 * 10 * 10
    assert main(["size", "--model", "conv4", "--dataset", "mnist5k", "--width", "0.25", "--batchnorm",
                 "--sparsities", "0.7", "--format", "json"]) == 0
    normed = json.loads(capsys.readouterr().out)
    assert main(["size", "--model", "conv4", "--dataset", "mnist5k", "--width", "0.25", "--sparsities", "0.7",
                 "--format", "json"]) == 0
    assert normed["paper_mib"] - json.loads(capsys.readouterr().out)["paper_mib"] == pytest.approx(96 * 32 / 8 / 2**20)
