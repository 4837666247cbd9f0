"""``ichbundles predict``, ``export`` and ``train`` argument handling through the command line."""

from __future__ import annotations

import json

import pytest
import torch

from ichbundles.bundle.predict import load_bundle_config
from ichbundles.cli import main, parse_args
from ichbundles.data.synthetic import generate_dataset

BUNDLE = "ich_cnn_lstm"
TINY = ["network_def#backbone=resnet10_tiny", "network_def#hidden=16", "image_size=64"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    overrides = {"network_def#backbone": "resnet10_tiny", "network_def#hidden": 16}
    network = load_bundle_config(BUNDLE, overrides=overrides).get_parsed_content("network_def")
    path = tmp_path_factory.mktemp("model") / "model.pt"
    torch.save(network.state_dict(), path)
    return path


def test_predict_reports_good_series_and_exits_2_for_a_bad_one(tmp_path, checkpoint, capsys):
    generate_dataset(tmp_path / "data", 2, size=64, progress=False)
    good = sorted((tmp_path / "data" / "dicom").iterdir())
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "pred"
    argv = ["predict", BUNDLE, "--checkpoint", str(checkpoint), "--output", str(out), *TINY]
    code = main([*argv, "--input", str(good[0]), str(empty), str(good[1])])
    assert code == 2
    captured = capsys.readouterr()
    # one line for the bad series; the rest of stderr is the progress bar
    assert [line for line in captured.err.splitlines() if str(empty) in line] == [
        f"error: {empty}: empty folder"
    ]
    assert "2 of 3 series predicted" in captured.out
    reports = sorted(out.glob("*.json"))
    names = {p.name for p in reports} - {"errors.json"}
    assert len(names) == 2
    report = json.loads((out / sorted(names)[0]).read_text())
    assert report["schema"] == "ichbundles.report/v1"
    assert (out / "predictions.csv").is_file()


def test_export_torchscript_beside_the_checkpoint(checkpoint, capsys):
    argv = ["export", BUNDLE, "--checkpoint", str(checkpoint), "--format", "torchscript"]
    assert main([*argv, *TINY]) == 0
    written = checkpoint.with_suffix(".ts")
    assert capsys.readouterr().out.strip() == str(written)
    assert written.is_file()


def test_overrides_after_options_reach_the_command():
    args = parse_args(
        ["train", BUNDLE, "--data", "d", "--output", "o", "--epochs", "2", "image_size=64", "a=b"]
    )
    assert args.overrides == ["image_size=64", "a=b"]
    assert args.epochs == 2


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "no_such_bundle", "--data", "."], "no_such_bundle"),
        (["train", BUNDLE, "--data", "missing-folder"], "missing-folder"),
    ],
)
def test_train_bad_input_exits_2_with_one_line(argv, fragment, capsys, tmp_path):
    assert main([*argv, "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0]


def test_train_on_a_folder_without_labels_exits_2_with_one_line(capsys, tmp_path):
    # the labels are read by a config expression: its error must not arrive wrapped by MONAI
    (tmp_path / "data").mkdir()
    argv = ["train", BUNDLE, "--data", str(tmp_path / "data"), "--output", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: no slice labels: {tmp_path / 'data' / 'labels.csv'} (RSNA format ID,Label)"
    ]


def test_word_that_is_not_an_override_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        parse_args(["train", BUNDLE, "--data", ".", "--epochs", "1", "oops"])
    assert caught.value.code == 2
    assert "unrecognized arguments: oops" in capsys.readouterr().err
