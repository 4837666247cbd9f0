"""Paper 000's evaluation: figures per level for Att-CNN and VGPMIL, runs averaged, Table 1."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ichbundles.mil import (
    MIL_SCHEMA,
    VGPMIL,
    MILFeatures,
    evaluate_mil,
    flat_mil_metrics,
    mil_table_markdown,
    read_mil_results,
    summarise_mil_runs,
    write_mil_results,
)
from ichbundles.mil.evaluation import binary_figures


def _features(shuffle_bags: bool = False) -> MILFeatures:
    """Four scans of three slices. Positive scans 0 and 2 bleed on their middle slice, where
    the attention peaks. The network calls scans 0, 1 and 2 positive (1 wrongly)."""
    bags = ["a", "b", "c", "d"]
    truth = {"a": [0, 1, 0], "b": [0, 0, 0], "c": [0, 1, 0], "d": [0, 0, 0]}
    weights = {"a": [0.1, 0.8, 0.1], "b": [0.2, 0.2, 0.6], "c": [0.3, 0.6, 0.1], "d": [1, 1, 1]}
    probability = {"a": 0.9, "b": 0.7, "c": 0.8, "d": 0.1}
    order = ["c", "a", "d", "b"] if shuffle_bags else bags
    slice_labels = np.concatenate([np.array(truth[b])[:, None] * np.ones((1, 6)) for b in order])
    scan_labels = np.concatenate([np.tile(max(truth[b]), (3, 6)) for b in order])
    x = np.where(slice_labels[:, -1:] > 0, 3.0, 0.0) + np.linspace(-0.5, 0.5, 12)[:, None]
    return MILFeatures(
        bag_ids=np.repeat(order, 3),
        slice_index=np.tile(np.arange(3), 4),
        sop_instance_uids=None,
        features=np.hstack([x, -x]).astype(np.float32),
        weights=np.concatenate([weights[b] for b in order]).astype(np.float32) / 3,
        scan_probability=np.repeat([probability[b] for b in order], 3)[:, None].astype(np.float32),
        scan_labels=scan_labels.astype(np.float32),
        slice_labels=slice_labels.astype(np.float32),
    )


def test_binary_figures_known_values():
    truth = np.array([1, 1, 0, 0])
    figures = binary_figures(truth, np.array([0.9, 0.4, 0.6, 0.1]), np.array([1, 0, 1, 0]))
    assert figures["accuracy"] == figures["precision"] == figures["recall"] == 0.5
    assert figures["f1"] == pytest.approx(0.5)
    assert figures["auc"] == pytest.approx(0.75)
    assert (figures["n"], figures["positives"]) == (4, 2)
    undefined = binary_figures(np.zeros(3), np.zeros(3), np.zeros(3))
    assert undefined["precision"] is None and undefined["auc"] is None
    assert undefined["accuracy"] == 1.0


def test_att_cnn_figures_from_attention():
    results = evaluate_mil(_features(), pooling="attention")
    assert results["schema"] == MIL_SCHEMA
    assert (results["n_scans"], results["n_slices"]) == (4, 12)
    assert list(results["methods"]) == ["Att-CNN/AL"]
    scan, slices = (results["methods"]["Att-CNN/AL"][level] for level in ("scan", "slice"))
    # scans: a, c true positives, b a false positive, d a true negative
    assert scan["accuracy"] == 0.75 and scan["precision"] == pytest.approx(2 / 3)
    assert scan["recall"] == 1.0 and scan["auc"] == 1.0
    # slices: the attention peak of a and c is the bleeding slice; b's peak is a false positive
    assert (slices["positives"], slices["recall"]) == (2, 1.0)
    assert slices["precision"] == pytest.approx(2 / 3)
    assert slices["accuracy"] == pytest.approx(11 / 12)


def test_results_do_not_depend_on_bag_order():
    a = evaluate_mil(_features(), pooling="attention")
    b = evaluate_mil(_features(shuffle_bags=True), pooling="attention")
    assert a == b


@pytest.mark.parametrize(
    ("pooling", "variant", "expected"),
    [
        ("attention", "raw", "Att-CNN+VGPMIL/AL-nAw"),
        ("gated", "weighted", "Att-CNN+VGPMIL/AL-Aw"),
        ("mean", "raw", "Att-CNN+VGPMIL/nAL"),
    ],
)
def test_vgpmil_columns_follow_the_paper(pooling, variant, expected):
    features = _features()
    model = VGPMIL(num_inducing=6, max_iter=30, seed=0)
    x = features.features * (features.weights[:, None] if variant == "weighted" else 1.0)
    model.fit(x, features.bag_ids, features.scan_labels[:, -1])
    results = evaluate_mil(features, pooling=pooling, vgpmil=model, variant=variant)
    assert list(results["methods"]) == [f"Att-CNN/{'nAL' if pooling == 'mean' else 'AL'}", expected]
    instance, bag = model.predict_proba(x, features.bag_ids)
    figures = results["methods"][expected]
    assert figures["scan"]["n"] == 4 and figures["slice"]["n"] == 12
    assert figures["scan"]["accuracy"] == np.mean((bag >= 0.5) == np.array([1, 0, 1, 0]))
    truth = features.slice_labels[:, -1] > 0
    assert figures["slice"]["accuracy"] == pytest.approx(np.mean((instance >= 0.5) == truth))


def test_evaluate_mil_rejects_missing_labels_and_classes():
    features = _features()
    with pytest.raises(ValueError, match="not among the network outputs"):
        evaluate_mil(features, "attention", class_name="subdural")
    unlabelled = MILFeatures(**{**features.__dict__, "slice_labels": None})
    with pytest.raises(ValueError, match="slice and scan labels"):
        evaluate_mil(unlabelled, "attention")


def _run(accuracy: float, method: str = "Att-CNN/AL") -> dict:
    figures = {"accuracy": accuracy, "f1": None, "precision": 0.5, "recall": 1.0, "auc": 0.9}
    return {
        "schema": MIL_SCHEMA,
        "class": "any",
        "methods": {method: {"slice": dict(figures), "scan": dict(figures)}},
    }


def test_summary_is_mean_and_sample_std_per_method():
    runs = [_run(0.5), _run(1.0), _run(0.8, "Att-CNN+VGPMIL/AL-nAw")]
    summary = summarise_mil_runs(runs)
    al = summary["methods"]["Att-CNN/AL"]["scan"]
    assert al["accuracy"]["mean"] == 0.75 and al["accuracy"]["n"] == 2
    assert al["accuracy"]["std"] == pytest.approx(np.std([0.5, 1.0], ddof=1))
    assert al["f1"] == {"mean": None, "std": None, "n": 0}
    assert summary["methods"]["Att-CNN+VGPMIL/AL-nAw"]["slice"]["accuracy"]["std"] == 0.0
    table = mil_table_markdown(summary)
    # Table 1 order: VGPMIL columns first, then the Att-CNN ones; both levels
    header = next(line for line in table.splitlines() if line.startswith("| scan-level"))
    assert header == "| scan-level | Att-CNN+VGPMIL AL-nAw | Att-CNN AL |"
    assert "| accuracy | 0.800 | 0.750 ± 0.354 |" in table
    assert "| f1 | 0.800" not in table and "| f1 | n/a | n/a |" in table
    with pytest.raises(ValueError, match="different classes"):
        summarise_mil_runs([_run(0.5), {**_run(0.5), "class": "subdural"}])
    with pytest.raises(ValueError, match="no runs"):
        summarise_mil_runs([])


def test_write_read_and_flat_metrics(tmp_path):
    results = evaluate_mil(_features(), pooling="attention")
    path = write_mil_results(results, tmp_path / "eval")
    assert read_mil_results(path) == results
    assert (tmp_path / "eval" / "mil_table.md").read_text().startswith("Class: any")
    written = sorted(p.name for p in (tmp_path / "eval").iterdir())
    assert written == ["mil_metrics.json", "mil_table.md"]  # no temporary file left
    flat = flat_mil_metrics(results)
    assert flat["attcnn_AL_scan_accuracy"] == 0.75 and "attcnn_AL_slice_auc" in flat
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "something else"}))
    with pytest.raises(ValueError, match=r"not an ichbundles\.mil\.metrics/v1 file"):
        read_mil_results(other)
