from __future__ import annotations

import argparse
import json

import pytest

from ichbundles.data.labels import LabelError
from ichbundles.metrics.cli import add_evaluate_parser, parse_thresholds
from ichbundles.metrics.predictions import PredictionError


def _parse(argv):
    parser = argparse.ArgumentParser(prog="ichbundles")
    add_evaluate_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["evaluate", *argv])


def test_run_writes_outputs_and_prints_table(slice_files, tmp_path, capsys):
    out = tmp_path / "eval"
    args = _parse(
        [
            "--predictions",
            str(slice_files["predictions"]),
            "--labels",
            str(slice_files["labels"]),
            "--slice-map",
            str(slice_files["slice_map"]),
            "--out",
            str(out),
            "--bootstrap",
            "30",
            "--threshold",
            "any=0.4,epidural=0.3",
        ]
    )
    assert args.run(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["slice_level"]["per_class"]["epidural"]["threshold"] == 0.3
    assert metrics["scan_level"]["per_class"]["any"]["threshold"] == 0.4
    printed = capsys.readouterr().out
    assert "weighted log loss" in printed and "AUC [95% CI]" in printed


def test_several_prediction_files(slice_files, tmp_path):
    pred = str(slice_files["predictions"])
    args = _parse(
        [
            "--predictions",
            pred,
            pred,
            "--predictions",
            pred,
            "--labels",
            str(slice_files["labels"]),
            "--out",
            str(tmp_path / "o"),
            "--bootstrap",
            "0",
        ]
    )
    assert len(args.predictions) == 3
    args.run(args)
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["summary"]["slice_level"]["weighted_log_loss"]["std"] == 0.0


@pytest.mark.parametrize(
    ("bad", "error"),
    [("predictions", PredictionError), ("labels", LabelError)],
)
def test_missing_files_raise_and_write_nothing(slice_files, tmp_path, bad, error):
    paths = {"predictions": slice_files["predictions"], "labels": slice_files["labels"]}
    paths[bad] = tmp_path / "nope.csv"
    args = _parse(
        [
            "--predictions",
            str(paths["predictions"]),
            "--labels",
            str(paths["labels"]),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    with pytest.raises(error, match="no such file"):
        args.run(args)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--threshold", "bleed=0.5"],
        ["--threshold", "any=1.5"],
        ["--target-sensitivity", "0"],
        ["--bootstrap", "-1"],
        ["--threshold", "any=0.5", "--target-sensitivity", "0.9"],
        ["--reads", "r.csv"],  # two label kinds
    ],
)
def test_bad_options_exit_2(argv):
    with pytest.raises(SystemExit) as info:
        _parse(["--predictions", "p.csv", "--labels", "l.csv", *argv])
    assert info.value.code == 2


def test_parse_thresholds():
    assert parse_thresholds("any=0.5, epidural=0.3,") == {"any": 0.5, "epidural": 0.3}


def test_main_exits_2_with_one_line(slice_files, tmp_path, capsys):
    from ichbundles import cli

    bad = tmp_path / "bad.csv"
    bad.write_text("ID,Label\nID_a_any,2\n")
    code = cli.main(
        [
            "evaluate",
            "--predictions",
            str(bad),
            "--labels",
            str(slice_files["labels"]),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "outside [0, 1]" in err and "\n" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("kind", "hint"),
    [
        ("reads", "this looks like a CQ500 reads file: use --reads"),
        ("scans", "this looks like a scan-level labels file: use --scan-labels"),
    ],
)
def test_wrong_label_kind_gives_a_short_hint(slice_files, tmp_path, kind, hint):
    from .conftest import random_data, write_reads, write_scans

    y, _ = random_data(8, 0)
    names = [f"CQ500-CT-{i}" for i in range(8)]
    wrong = (write_reads if kind == "reads" else write_scans)(tmp_path / "wrong.csv", names, y)
    args = _parse(
        [
            "--predictions",
            str(slice_files["predictions"]),
            "--labels",
            str(wrong),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    with pytest.raises(LabelError) as info:
        args.run(args)
    message = str(info.value)
    assert message.startswith(str(wrong)) and "header must be 'ID,Label'" in message
    assert message.endswith(hint) and "\n" not in message
    assert len(message) < len(str(wrong)) + 180  # not all 43 reads.csv columns
    assert not (tmp_path / "o").exists()


def test_out_that_is_a_file_fails_before_evaluating(slice_files, tmp_path, monkeypatch):
    from ichbundles.metrics import evaluate

    def never(*args, **kwargs):
        raise AssertionError("evaluated although --out is a file")

    monkeypatch.setattr(evaluate, "evaluate_files", never)
    out = tmp_path / "taken"
    out.write_text("x")
    args = _parse(
        [
            "--predictions",
            str(slice_files["predictions"]),
            "--labels",
            str(slice_files["labels"]),
            "--out",
            str(out),
        ]
    )
    with pytest.raises(PredictionError, match="output folder is a file, not a folder"):
        args.run(args)
    assert out.read_text() == "x"


@pytest.mark.parametrize(
    "argv",
    [
        [],  # neither --predictions nor --mil
        ["--predictions", "p.csv"],  # no labels
        ["--mil", "m.json", "--labels", "l.csv"],
        ["--mil", "m.json", "--predictions", "p.csv"],
    ],
)
def test_missing_or_mixed_modes_exit_2(argv, capsys):
    args = _parse(argv)
    with pytest.raises(SystemExit) as info:
        args.run(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "required" in err or "--mil takes no" in err


def _mil_run(path, accuracy, method="Att-CNN/AL"):
    figures = {"accuracy": accuracy, "f1": 0.5, "precision": 0.5, "recall": 0.5, "auc": 0.9}
    path.write_text(
        json.dumps(
            {
                "schema": "ichbundles.mil.metrics/v1",
                "class": "any",
                "methods": {method: {"slice": figures, "scan": figures}},
            }
        )
    )
    return path


def test_mil_runs_averaged_into_table_1(tmp_path, capsys):
    files = [_mil_run(tmp_path / f"seed{s}.json", a) for s, a in enumerate((0.6, 0.8))]
    files.append(_mil_run(tmp_path / "vgp.json", 0.9, "Att-CNN+VGPMIL/AL-nAw"))
    out = tmp_path / "table"
    args = _parse(["--mil", *map(str, files), "--out", str(out)])
    assert args.run(args) == 0
    printed = capsys.readouterr().out
    assert "| accuracy | 0.900 | 0.700 ± 0.141 |" in printed
    assert (out / "mil_table.md").read_text() in printed
    summary = json.loads((out / "mil_summary.json").read_text())
    assert summary["methods"]["Att-CNN/AL"]["scan"]["accuracy"]["n"] == 2
    assert summary["runs"] == [str(f) for f in files]


def test_mil_bad_file_is_one_error_naming_it(tmp_path, capsys):
    from ichbundles import cli

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code = cli.main(["evaluate", "--mil", str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(bad) in err[0] and "not JSON" in err[0]
    assert not (tmp_path / "o").exists()
