"""Every training config saves the best-model record and restores it on resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from monai.bundle import ConfigParser

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"

TRAINING_CONFIGS = [
    ("ich_cnn_lstm", ["train.yaml"]),
    ("ich_cnn_lstm", ["train.yaml", "multi_gpu_train.yaml"]),
    ("ich_attention_mil", ["train.yaml"]),
    ("ich_attention_mil", ["train.yaml", "multi_gpu_train.yaml"]),
    ("ich_adjacent_slices", ["train.yaml"]),
    ("ich_adjacent_slices", ["train.yaml", "fold.yaml"]),
    ("ich_adjacent_slices", ["train.yaml", "fusion.yaml"]),
]


@pytest.mark.parametrize(("bundle", "configs"), TRAINING_CONFIGS)
def test_best_model_record_is_saved_and_restored(bundle, configs):
    # multi_gpu_train.yaml and fusion.yaml replace `initialize`: each must restore the record
    parser = ConfigParser()
    parser.read_config([str(BUNDLES / bundle / "configs" / name) for name in configs])
    restores = [
        item for item in parser["initialize"] if "@train#best_model_record.restore(" in str(item)
    ]
    assert len(restores) == 1 and "checkpoint_last.pt" in restores[0]
    assert "if @resume" in restores[0]
    savers = [
        h
        for h in parser["train"]["handlers"]
        if isinstance(h, dict) and h.get("_target_", "").endswith("LastCheckpointSaver")
    ]
    assert len(savers) == 1 and savers[0]["save_dict"]["best_model"] == "@train#best_model_record"
    assert "@validate#best_model_saver" in parser["validate"]["handlers"]
    record = parser["train"]["best_model_record"]
    assert record["saver"] == "@validate#best_model_saver"
