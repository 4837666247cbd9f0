"""``ichbundles demo`` end to end on a tiny configuration: every promised output exists."""

from __future__ import annotations

import json
from pathlib import Path

from ichbundles.cli import main

TINY = ["network_def#backbone=resnet10_tiny", "network_def#hidden=16", "batch_size=2"]
TINY += ["encoder_warmup_epochs=1"]


def test_demo_writes_checkpoint_report_metrics_and_mlflow(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--output", str(out), "--scans", "6", "--test-scans", "4", "--epochs", "1"]
    assert main([*argv, "--image-size", "32", "--size", "64", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "held-out scan-level 'any' AUC" in printed
    assert "mlflow ui --backend-store-uri sqlite:///" in printed
    paths = json.loads((out / "demo.json").read_text())
    for key in ("checkpoint", "report", "metrics", "evaluation_report", "mlflow_db"):
        assert Path(paths[key]).is_file(), key
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert {"slice_level", "scan_level"} <= set(metrics)
    report = json.loads(Path(paths["report"]).read_text())
    assert report["schema"] == "ichbundles.report/v1"
