from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from ichbundles.constants import CLASS_WEIGHTS, ICH_CLASSES, NUM_CLASSES
from ichbundles.data.labels import LabelError
from ichbundles.metrics.evaluate import SLICE_CI_NOTE, evaluate_arrays, evaluate_files
from ichbundles.metrics.predictions import PredictionError

from .conftest import random_data, write_reads, write_rsna, write_scans

REQUIRED = (
    "auc",
    "auc_ci",
    "sensitivity",
    "specificity",
    "precision",
    "accuracy",
    "f1",
    "threshold",
    "confusion",
)


def test_level_figures_match_independent_computations():
    y, p = random_data(300, 1, ties=True)
    p = np.clip(p, 0.01, 0.99)  # sklearn clips at float eps, not 1e-15
    level = evaluate_arrays(y, p, n_bootstrap=200, thresholds={"epidural": 0.3})
    json.dumps(level, allow_nan=False)
    expected = log_loss(y.ravel(), p.ravel(), sample_weight=np.tile(CLASS_WEIGHTS, 300))
    assert level["weighted_log_loss"] == pytest.approx(expected)
    for c, cls in enumerate(ICH_CLASSES):
        entry = level["per_class"][cls]
        assert all(key in entry for key in REQUIRED)
        assert entry["auc"] == pytest.approx(roc_auc_score(y[:, c], p[:, c]))
        low, high = entry["auc_ci"]
        assert low <= entry["auc"] <= high
        t = 0.3 if cls == "epidural" else 0.5
        assert entry["threshold"] == t
        d = p[:, c] >= t
        assert entry["confusion"] == {
            "tp": int((d & (y[:, c] == 1)).sum()),
            "fp": int((d & (y[:, c] == 0)).sum()),
            "tn": int((~d & (y[:, c] == 0)).sum()),
            "fn": int((~d & (y[:, c] == 1)).sum()),
        }
        assert entry["f1_ci"][0] <= entry["f1"] <= entry["f1_ci"][1]


def test_single_label_value_is_null_with_reason():
    y, p = random_data(50, 2)
    y[:, 0] = 0
    level = evaluate_arrays(y, p, n_bootstrap=50)
    entry = level["per_class"]["epidural"]
    assert entry["auc"] is None and entry["auc_ci"] is None
    assert "only one label value" in entry["auc_reason"]
    assert entry["sensitivity"] is None and "no positive cases" in entry["sensitivity_reason"]
    assert "epidural" not in level["mean_auc_over"]
    json.dumps(level, allow_nan=False)


def test_target_sensitivity_and_delong_without_bootstrap():
    y, p = random_data(200, 3)
    level = evaluate_arrays(y, p, target_sensitivity=0.95, n_bootstrap=0)
    for cls in ICH_CLASSES:
        assert level["per_class"][cls]["sensitivity"] >= 0.95
        assert level["per_class"][cls]["f1_ci"] is None
    assert level["auc_ci_method"] == "DeLong" and level["mean_auc_ci"] is None


def test_unknown_threshold_class():
    y, p = random_data(10, 0)
    with pytest.raises(ValueError, match="unknown classes"):
        evaluate_arrays(y, p, thresholds={"bleed": 0.5})


def test_rsna_files_slice_and_scan_level(slice_files):
    result = evaluate_files(
        [slice_files["predictions"]],
        labels=slice_files["labels"],
        slice_map=slice_files["slice_map"],
        n_bootstrap=100,
    )
    metrics = result.metrics
    y, p = slice_files["y"], slice_files["p"]
    assert metrics["slice_level"]["per_class"]["any"]["auc"] == pytest.approx(
        roc_auc_score(y[:, -1], p[:, -1])
    )
    assert metrics["slice_level"]["auc_ci_method"].startswith("bootstrap")
    scans = pd.Series(slice_files["scans"])
    y_scan = pd.DataFrame(y).groupby(scans).max().to_numpy()
    p_scan = pd.DataFrame(p).groupby(scans).max().to_numpy()
    assert metrics["scan_level"]["n"] == 8
    assert metrics["scan_level"]["weighted_log_loss"] == pytest.approx(
        log_loss(y_scan.ravel(), p_scan.ravel(), sample_weight=np.tile(CLASS_WEIGHTS, 8))
    )
    json.dumps(metrics, allow_nan=False)


def test_id_order_does_not_change_results(slice_files, tmp_path):
    other = write_rsna(tmp_path / "p2.csv", slice_files["keys"], slice_files["p"], 99)
    a = evaluate_files([slice_files["predictions"]], labels=slice_files["labels"], n_bootstrap=20)
    b = evaluate_files([other], labels=slice_files["labels"], n_bootstrap=20)
    assert a.metrics["slice_level"] == b.metrics["slice_level"]


def test_several_runs_give_mean_and_std(slice_files, tmp_path):
    noisy = np.clip(slice_files["p"] + 0.05, 0, 1)
    other = write_rsna(tmp_path / "p2.csv", slice_files["keys"], noisy)
    metrics = evaluate_files(
        [slice_files["predictions"], other], labels=slice_files["labels"], n_bootstrap=0
    ).metrics
    runs = [r["slice_level"]["weighted_log_loss"] for r in metrics["runs"]]
    summary = metrics["summary"]["slice_level"]["weighted_log_loss"]
    assert summary["mean"] == pytest.approx(np.mean(runs))
    assert summary["std"] == pytest.approx(np.std(runs, ddof=1))


def test_cq500_reads_with_aggregated_slices(tmp_path, slice_files):
    names = [f"CQ500-CT-{i}" for i in range(8)]
    y_scan = pd.DataFrame(slice_files["y"]).groupby(np.arange(40) // 5).max().to_numpy()
    reads = write_reads(tmp_path / "reads.csv", names, y_scan)
    pd.DataFrame(
        {"sop_instance_uid": slice_files["keys"], "name": [names[i // 5] for i in range(40)]}
    ).to_csv(tmp_path / "map.csv", index=False)
    metrics = evaluate_files(
        [slice_files["predictions"]], reads=reads, slice_map=tmp_path / "map.csv", n_bootstrap=50
    ).metrics
    assert "slice_level" not in metrics and metrics["scan_level"]["n"] == 8
    with pytest.raises(PredictionError, match="need a slice map"):
        evaluate_files([slice_files["predictions"]], reads=reads)


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        (["s0", "s1", "s2", "s9"], "1 predicted scans have no label, e.g. 's9'"),
        (["s0", "s1"], "1 labelled scans have no prediction, e.g. 's2'"),
    ],
)
def test_mismatched_ids(tmp_path, keys, problem):
    y = random_data(3, 0)[0]
    labels = write_scans(tmp_path / "l.csv", ["s0", "s1", "s2"], y)
    pred = write_scans(tmp_path / "p.csv", keys, random_data(len(keys), 1)[1])
    with pytest.raises(PredictionError, match=problem):
        evaluate_files([pred], scan_labels=labels)


def test_bad_labels_raise_label_error(tmp_path):
    (tmp_path / "l.csv").write_text("")
    _, p = random_data(2, 0)
    pred = write_scans(tmp_path / "p.csv", ["a", "b"], p)
    with pytest.raises(LabelError, match="empty file"):
        evaluate_files([pred], scan_labels=tmp_path / "l.csv")


def test_scan_predictions_cannot_score_slice_labels(slice_files, tmp_path):
    pred = write_scans(tmp_path / "p.csv", ["a"], np.full((1, NUM_CLASSES), 0.5))
    with pytest.raises(PredictionError, match="per-scan predictions"):
        evaluate_files([pred], labels=slice_files["labels"])


def test_slice_level_without_map_warns_once_and_says_so(slice_files, tmp_path, caplog):
    other = write_rsna(tmp_path / "p2.csv", slice_files["keys"], slice_files["p"], 7)
    with caplog.at_level("WARNING", logger="ichbundles.metrics.evaluate"):
        metrics = evaluate_files(
            [slice_files["predictions"], other], labels=slice_files["labels"], n_bootstrap=0
        ).metrics
    warnings = [r for r in caplog.records if "treat slices as independent" in r.getMessage()]
    assert len(warnings) == 1 and "--slice-map" in warnings[0].getMessage()
    assert metrics["slice_level"]["auc_ci_method"] == f"DeLong; {SLICE_CI_NOTE}"
    assert all(SLICE_CI_NOTE in run["slice_level"]["auc_ci_method"] for run in metrics["runs"])


def test_slice_level_with_map_does_not_warn(slice_files, caplog):
    with caplog.at_level("WARNING", logger="ichbundles.metrics.evaluate"):
        metrics = evaluate_files(
            [slice_files["predictions"]],
            labels=slice_files["labels"],
            slice_map=slice_files["slice_map"],
            n_bootstrap=0,
        ).metrics
    assert not caplog.records
    assert metrics["slice_level"]["auc_ci_method"] == "DeLong clustered by scan (Obuchowski)"
