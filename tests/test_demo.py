"""``ichbundles demo`` end to end on a tiny configuration, with and without a shipped model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ichbundles.bundle.checkpoint import SHIPPED_MODEL, ModelSettings
from ichbundles.bundle.paths import bundle_path
from ichbundles.cli import main
from ichbundles.networks import CNNLSTM

# part 2's training at its smallest; setting ids (not network_def#...) so that the checkpoint
# records what it was trained with
TINY = ["backbone=resnet10_tiny", "hidden=16", "batch_size=2", "encoder_warmup_epochs=1"]
ARGS = ["--scans", "6", "--test-scans", "4", "--epochs", "1", "--image-size", "32"]
ARGS += ["--size", "64"]  # seed 2026's first 4 scans at 64 px: 2 with blood, 2 without
PART2_KEYS = ("checkpoint", "report", "metrics", "evaluation_report", "roc", "mlflow_db")
SHIPPED_KEYS = (
    "shipped_model",
    "shipped_metrics",
    "shipped_evaluation_report",
    "shipped_roc",
    "shipped_scan_picture",
)


def _bundle_copy(tmp_path: Path, with_model: bool) -> Path:
    """A copy of ich_cnn_lstm; with an untrained tiny model as its shipped one, or none."""
    copy = tmp_path / "ich_cnn_lstm"
    shutil.copytree(bundle_path("ich_cnn_lstm"), copy, ignore=shutil.ignore_patterns("models"))
    if with_model:
        torch.manual_seed(0)
        settings = {"bundle": "ich_cnn_lstm", "backbone": "resnet10_tiny", "hidden": 16}
        settings |= {"lstm_layers": 2, "dropout": 0.0, "image_size": 32, "windows": "adjacent"}
        network = CNNLSTM("resnet10_tiny", hidden=16)
        (copy / SHIPPED_MODEL).parent.mkdir()
        state = {"model": network.state_dict(), "settings": ModelSettings(settings).state_dict()}
        torch.save(state, copy / SHIPPED_MODEL)
    return copy


def _run(tmp_path: Path, with_model: bool, capsys) -> tuple[dict[str, Path], str]:
    out = tmp_path / "demo"
    bundle = _bundle_copy(tmp_path, with_model)
    assert main(["demo", "--output", str(out), "--bundle", str(bundle), *ARGS, *TINY]) == 0
    paths = {k: Path(v) for k, v in json.loads((out / "demo.json").read_text()).items()}
    return paths, capsys.readouterr().out


def _assert_picture(path: Path, min_width: int) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= min_width and image.height >= 300
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10  # not blank


def _check_part2(paths: dict[str, Path], printed: str) -> None:
    assert set(PART2_KEYS) <= set(paths)
    for key, path in paths.items():
        assert path.is_file(), key
    assert "part 2, 1-epoch training: scan-level 'any' AUC" in printed
    assert "mlflow ui --backend-store-uri sqlite:///" in printed
    assert json.loads(paths["report"].read_text())["schema"] == "ichbundles.report/v1"
    metrics = json.loads(paths["metrics"].read_text())
    assert {"slice_level", "scan_level"} <= set(metrics)
    assert "time: held-out data" in printed and "part 2" in printed.split("time:")[-1]


@pytest.mark.parametrize("with_model", [True, False], ids=["shipped-model", "no-model"])
def test_demo(tmp_path, capsys, root_logging, with_model):
    paths, printed = _run(tmp_path, with_model, capsys)
    _check_part2(paths, printed)
    if not with_model:
        [line] = [line for line in printed.splitlines() if line.startswith("part 1:")]
        assert "ships no trained model" in line
        assert not set(SHIPPED_KEYS) & set(paths)
        return
    assert set(SHIPPED_KEYS) <= set(paths)
    metrics = json.loads(paths["shipped_metrics"].read_text())
    any_scan = metrics["scan_level"]["per_class"]["any"]
    assert 0.0 <= any_scan["auc"] <= 1.0
    low, high = any_scan["auc_ci"]
    assert low <= any_scan["auc"] <= high
    assert any_scan["n_positive"] == 2 and any_scan["n_negative"] == 2
    assert "part 1, shipped model: scan-level 'any' AUC" in printed and "95% CI" in printed
    assert paths["shipped_scan_picture"].name == "scan_scan-0001.png"  # the first with blood
    _assert_picture(paths["shipped_scan_picture"], min_width=800)
    _assert_picture(paths["shipped_roc"], min_width=300)
