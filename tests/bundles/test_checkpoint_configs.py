"""Every config that loads a trained model takes its setting ids from the checkpoint, falls back
to train.yaml's values for a checkpoint without settings, and checks what it ends up with."""

from __future__ import annotations

import pytest
import torch
from monai.bundle import ConfigParser

from ichbundles.bundle.checkpoint import ModelSettings, check_settings
from ichbundles.bundle.paths import available_bundles, bundle_path

#: Configs that load a trained model, merged as they are run, and the id of that model's path.
LOADING_CONFIGS = {
    "ich_cnn_lstm": [
        (["inference.yaml"], "checkpoint"),
        (["train.yaml", "evaluate.yaml"], "ckpt_path"),
    ],
    "ich_attention_mil": [
        (["inference.yaml"], "checkpoint"),
        (["train.yaml", "vgpmil.yaml"], "ckpt_path"),
        (["train.yaml", "vgpmil.yaml", "evaluate.yaml"], "ckpt_path"),
    ],
    "ich_adjacent_slices": [
        (["inference.yaml"], "checkpoint"),
        (["train.yaml", "evaluate.yaml"], "ckpt_path"),
    ],
}
CASES = [
    pytest.param(bundle, files, path_id, id=f"{bundle}-{'+'.join(files)}")
    for bundle, configs in LOADING_CONFIGS.items()
    for files, path_id in configs
]


def _parser(bundle: str, files: list[str], **settings) -> ConfigParser:
    root = bundle_path(bundle)
    parser = ConfigParser()
    parser.read_config([str(root / "configs" / f) for f in files])
    parser.update({"bundle_root": str(root), "output_dir": "/nonexistent", **settings})
    return parser


def _train_settings(bundle: str) -> dict:
    return _parser(bundle, ["train.yaml"]).get_parsed_content("model_settings")


def _other_values(settings: dict) -> dict:
    """Each setting changed from its default (the bundle name kept)."""

    def other(value):
        if isinstance(value, bool):
            return not value
        if isinstance(value, int | float):
            return value + 1
        if isinstance(value, list):
            return [v + 1 for v in value]
        return f"{value}_other"

    return {k: v if k == "bundle" else other(v) for k, v in settings.items()}


def test_every_bundle_is_covered():
    assert sorted(LOADING_CONFIGS) == available_bundles()


@pytest.mark.parametrize(("bundle", "files", "path_id"), CASES)
def test_without_settings_the_values_are_train_yamls(bundle, files, path_id, tmp_path):
    torch.save({"model": {"w": torch.zeros(1)}}, tmp_path / "old.pt")  # no settings
    for path in (tmp_path / "missing.pt", tmp_path / "old.pt"):
        parser = _parser(bundle, files, **{path_id: str(path)})
        assert parser.get_parsed_content("model_settings") == _train_settings(bundle)


@pytest.mark.parametrize(("bundle", "files", "path_id"), CASES)
def test_setting_ids_take_the_checkpoints_values_and_are_checked(bundle, files, path_id, tmp_path):
    trained = _other_values(_train_settings(bundle))
    checkpoint = tmp_path / "model.pt"
    state = {"model": {"w": torch.zeros(1)}, "settings": ModelSettings(trained).state_dict()}
    torch.save(state, checkpoint)
    parser = _parser(bundle, files, **{path_id: str(checkpoint)})
    assert parser.get_parsed_content("model_settings") == trained
    assert any("check_settings" in str(step) for step in parser["initialize"])
    # an id given on the command line that contradicts the checkpoint fails in `initialize`
    key = next(k for k in trained if k != "bundle")
    parser = _parser(bundle, files, **{path_id: str(checkpoint), key: _train_settings(bundle)[key]})
    with pytest.raises(ValueError, match=f"{checkpoint} was trained with {key}="):
        check_settings(checkpoint, parser.get_parsed_content("model_settings"))


def _savers(node):
    """Every checkpoint saver (``CheckpointSaver``, ``LastCheckpointSaver``) in a raw config."""
    if isinstance(node, dict):
        if str(node.get("_target_", "")).endswith("CheckpointSaver"):
            yield node
        for value in node.values():
            yield from _savers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _savers(value)


@pytest.mark.parametrize("bundle", sorted(LOADING_CONFIGS))
def test_training_saves_the_settings_with_every_model(bundle):
    """Every checkpoint saver of every training stage stores ``model_settings``."""
    savers = [
        saver
        for config in sorted((bundle_path(bundle) / "configs").glob("*.yaml"))
        for saver in _savers(ConfigParser.load_config_file(config))
    ]
    assert len(savers) >= 2
    expected = "$ichbundles.bundle.checkpoint.ModelSettings(@model_settings)"
    assert all(saver["save_dict"]["settings"] == expected for saver in savers)
