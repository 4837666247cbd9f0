"""Prediction with the ich_cnn_lstm bundle: reports, csv files, bad inputs, ``monai.bundle run``."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ichbundles.bundle.paths import bundle_config
from ichbundles.bundle.predict import (
    ERRORS_JSON,
    PredictionResult,
    Predictor,
    exit_code,
    load_bundle_config,
    predict_series,
)
from ichbundles.bundle.report import (
    PREDICTIONS_CSV,
    SCAN_PREDICTIONS_CSV,
    slice_ids,
    validate_report,
)
from ichbundles.constants import ICH_CLASSES
from ichbundles.data.labels import rsna_id
from ichbundles.data.synthetic import generate_dataset
from ichbundles.io import read_series

BUNDLE = "ich_cnn_lstm"
VERSION = json.loads(bundle_config(BUNDLE, "metadata.json").read_text())["version"]
CONFIG = Path(__file__).resolve().parents[2] / "bundles" / BUNDLE / "configs" / "inference.yaml"
#: A tiny network and 64-pixel images keep the tests fast.
TINY = {"network_def#backbone": "resnet10_tiny", "network_def#hidden": 16, "image_size": 64}


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("synthetic")
    # shuffled file names: slice order must come from the positions, not the names
    generate_dataset(out, 3, size=64, quirks=("shuffled_names",), progress=False)
    return sorted((out / "dicom").iterdir())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    network = load_bundle_config(BUNDLE, overrides=TINY).get_parsed_content("network_def")
    path = tmp_path_factory.mktemp("model") / "model.pt"
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, pydicom_file) -> list[str]:
    folder = tmp_path_factory.mktemp("bad")
    (folder / "empty").mkdir()
    (folder / "notes.txt").write_text("not an image\n")
    return [str(folder / "empty"), str(pydicom_file("MR_small.dcm")), str(folder / "notes.txt")]


@pytest.fixture(scope="module")
def predicted(series, checkpoint, bad_inputs, tmp_path_factory):
    output = tmp_path_factory.mktemp("predictions")
    inputs = [str(series[0]), *bad_inputs, *map(str, series[1:])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = predict_series(BUNDLE, checkpoint, inputs, output, overrides=TINY, progress=False)
    return results, output


def test_one_valid_report_per_series_named_by_uid(predicted, series):
    results, output = predicted
    good = [r for r in results if r.ok]
    assert len(good) == len(series)
    for result in good:
        validate_report(result.report)
        uid = result.report["series"]["series_instance_uid"]
        assert result.path == output / f"{uid}.json"
        assert json.loads(result.path.read_text()) == result.report
        assert result.report["model"]["bundle"] == BUNDLE
        assert result.report["model"]["version"] == VERSION
        assert len(result.report["model"]["checkpoint_sha256"]) == 64


def test_slices_follow_read_series(predicted):
    for result in filter(lambda r: r.ok, predicted[0]):
        reference = read_series(result.input)
        slices = result.report["slices"]
        assert [s["sop_instance_uid"] for s in slices] == list(reference.sop_instance_uids)
        np.testing.assert_allclose([s["z_mm"] for s in slices], reference.z_mm)
        assert result.report["series"]["study_instance_uid"] == reference.study_instance_uid
        assert result.report["series"]["n_slices"] == reference.n_slices


def test_scan_probability_is_max_of_slices_and_positive_follows_thresholds(predicted):
    for result in filter(lambda r: r.ok, predicted[0]):
        scan = result.report["scan"]
        for c in ICH_CLASSES:
            top = max(s["probabilities"][c] for s in result.report["slices"])
            assert scan["probabilities"][c] == pytest.approx(top)
            assert scan["positive"][c] == (scan["probabilities"][c] >= scan["thresholds"][c])
        timing = result.report["timing_s"]
        assert timing["total"] >= timing["read"] + timing["preprocess"] + timing["model"] - 1e-6


def test_csv_files_list_every_slice_and_class(predicted):
    results, output = predicted
    reports = [r.report for r in results if r.ok]
    with open(output / PREDICTIONS_CSV, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ID", "Label"]
    expected = [
        (rsna_id(s["sop_instance_uid"], c), s["probabilities"][c])
        for report in reports
        for s in report["slices"]
        for c in ICH_CLASSES
    ]
    assert len(rows) - 1 == sum(r["series"]["n_slices"] for r in reports) * 6
    assert [row[0] for row in rows[1:]] == [key for key, _ in expected]
    np.testing.assert_allclose([float(row[1]) for row in rows[1:]], [p for _, p in expected])
    with open(output / SCAN_PREDICTIONS_CSV, newline="") as f:
        scans = list(csv.DictReader(f))
    assert [s["series_instance_uid"] for s in scans] == [
        r["series"]["series_instance_uid"] for r in reports
    ]
    for scan, report in zip(scans, reports, strict=True):
        for c in ICH_CLASSES:
            assert float(scan[c]) == report["scan"]["probabilities"][c]


def test_bad_inputs_are_reported_and_do_not_stop_the_others(predicted, bad_inputs):
    results, output = predicted
    assert [r.input for r in results if not r.ok] == bad_inputs
    assert exit_code(results) == 2
    errors = json.loads((output / ERRORS_JSON).read_text())
    assert [e["input"] for e in errors] == bad_inputs
    for error, path in zip(errors, bad_inputs, strict=True):
        assert "\n" not in error["error"] and path in error["error"]
    assert "no CT series" in errors[1]["error"]
    # only the good reports, the csv files and errors.json: nothing half-written or temporary
    names = sorted(p.name for p in output.iterdir())
    good = sorted(r.path.name for r in results if r.ok)
    assert names == sorted([*good, ERRORS_JSON, PREDICTIONS_CSV, SCAN_PREDICTIONS_CSV])
    assert exit_code([r for r in results if r.ok]) == 0


def test_validate_report_rejects_inconsistent_reports(predicted):
    report = next(r.report for r in predicted[0] if r.ok)
    validate_report(report)
    broken = json.loads(json.dumps(report))
    broken["scan"]["probabilities"]["any"] = 0.0 if report["scan"]["probabilities"]["any"] else 1
    with pytest.raises(ValueError, match="scan"):
        validate_report(broken)
    broken = json.loads(json.dumps(report))
    del broken["timing_s"]
    with pytest.raises(ValueError, match="report: expected keys"):
        validate_report(broken)
    broken = json.loads(json.dumps(report))
    broken["slices"][1]["index"] = 0
    with pytest.raises(ValueError, match=r"slices\[1\]\.index"):
        validate_report(broken)


def test_wrapped_checkpoint_gives_the_same_report(predicted, checkpoint, tmp_path):
    state = torch.load(checkpoint, weights_only=True)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, wrapped)
    result = next(r for r in predicted[0] if r.ok)
    report = Predictor(BUNDLE, wrapped, overrides=TINY, thresholds=0.3).predict(result.input)
    assert report["scan"]["thresholds"] == dict.fromkeys(ICH_CLASSES, 0.3)
    assert report["scan"]["probabilities"] == pytest.approx(result.report["scan"]["probabilities"])


def test_exit_code_is_zero_when_all_succeed():
    assert exit_code([PredictionResult("a", report={})]) == 0
    assert exit_code([PredictionResult("a", report={}), PredictionResult("b", error="b: x")]) == 2


def test_monai_bundle_run_writes_the_same_reports(predicted, checkpoint, tmp_path):
    results, _ = predicted
    good = [r for r in results if r.ok]
    overrides = [a for k, v in TINY.items() for a in (f"--{k}", str(v))]
    command = [
        sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIG),
        "--input_files", repr([r.input for r in good]), "--checkpoint", str(checkpoint),
        "--output_dir", str(tmp_path), "--dataloader#batch_size", "2", *overrides,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for result in good:
        report = json.loads((tmp_path / result.path.name).read_text())
        validate_report(report)
        assert report["series"] == result.report["series"]
        assert [s["sop_instance_uid"] for s in report["slices"]] == [
            s["sop_instance_uid"] for s in result.report["slices"]
        ]
        for got, expected in zip(report["slices"], result.report["slices"], strict=True):
            assert got["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-5)
    with open(tmp_path / PREDICTIONS_CSV) as f:
        assert sum(1 for _ in f) - 1 == sum(r.report["series"]["n_slices"] for r in good) * 6


def test_volume_slices_get_keys_the_evaluator_can_parse(tmp_path):
    """Slices without a SOPInstanceUID (NIfTI) are keyed ``<series UID>.<index>`` in the CSV,
    which ``ichbundles evaluate`` reads back (``_`` would be taken for the class separator)."""
    from ichbundles.bundle.report import write_prediction_tables
    from ichbundles.metrics.predictions import read_slice_predictions

    report = {
        "series": {"series_instance_uid": "1.2.3"},
        "slices": [{"index": i, "sop_instance_uid": ""} for i in range(2)],
    }
    keys = slice_ids(report)
    assert keys == ["1.2.3.0", "1.2.3.1"]
    path, _ = write_prediction_tables([(k, [0.5] * 6) for k in keys], [], tmp_path)
    assert list(read_slice_predictions(path).index) == keys


def test_checkpoint_of_other_settings_is_one_clear_error(checkpoint, series, tmp_path, capsys):
    from ichbundles import cli

    with pytest.raises(ValueError, match="does not fit the network of ich_cnn_lstm"):
        Predictor(BUNDLE, checkpoint, device="cpu", overrides={**TINY, "network_def#hidden": 8})
    argv = ["predict", BUNDLE, "--checkpoint", str(checkpoint), "--input", str(series[0])]
    argv += ["--output", str(tmp_path / "p"), "image_size=64", "network_def#hidden=8"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(checkpoint) in err[0] and "size mismatch" in err[0]
    assert not (tmp_path / "p").exists()
