"""Paper 001's Table I from two evaluation folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ichbundles.adjacent import TABLE_ROWS, write_adjacent_table
from ichbundles.constants import ICH_CLASSES


def _eval_dir(root: Path, wll: float, aucs: dict[str, float | None]) -> Path:
    (root / "metrics").mkdir(parents=True)
    (root / "scan_metrics").mkdir()
    slices = {"slice_level": {"weighted_log_loss": wll, "mean_auc": 0.9, "n": 400}}
    per_class = {c: {"auc": a, "auc_ci": [0.5, 1.0]} for c, a in aucs.items()}
    scans = {"scan_level": {"per_class": per_class, "mean_auc": 0.8, "n": 12}}
    (root / "metrics" / "metrics.json").write_text(json.dumps(slices))
    (root / "scan_metrics" / "metrics.json").write_text(json.dumps(scans))
    return root


@pytest.fixture
def table(tmp_path):
    stage1 = _eval_dir(tmp_path / "s1", 0.09, {c: 0.5 + i / 20 for i, c in enumerate(ICH_CLASSES)})
    aucs = {c: 0.9 for c in ICH_CLASSES} | {"epidural": None}  # no positive epidural scan
    fusion = _eval_dir(tmp_path / "fu", 0.07, aucs)
    return write_adjacent_table(stage1, fusion, tmp_path / "out")


def test_table_follows_paper_rows_with_one_column_per_model(table):
    lines = table.markdown.read_text().splitlines()
    assert lines[0] == "| findings (scan-level AUC) | stage 1 (2D baseline) | stage 1 + fusion |"
    assert [line.split(" | ")[0][2:] for line in lines[2:8]] == [r[0] for r in TABLE_ROWS]
    assert lines[2] == "| ICH (any subtypes) | 0.7500 | 0.9000 |"
    assert lines[7] == "| Extradural | 0.5000 | n/a |"
    assert lines[9] == "| RSNA weighted log loss (slices) | 0.0900 | 0.0700 |"
    assert "12 scans, 400 slices." in lines


def test_table_json_and_flat_metrics(table):
    content = json.loads(table.json.read_text())
    assert content["columns"]["stage 1 + fusion"]["slice_wll"] == 0.07
    metrics = table.metrics()
    assert metrics["stage1_wll"] == 0.09 and metrics["fusion_scan_auc_any"] == 0.9
    assert "fusion_scan_auc_epidural" not in metrics  # undefined AUCs are not logged


def test_missing_metrics_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_adjacent_table(tmp_path / "a", tmp_path / "b", tmp_path)
