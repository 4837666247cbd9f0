"""Training stages of a bundle: read from its metadata, run in order with the same settings,
nested overrides given only to the stages that hold their parent (the runner is replaced)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ichbundles.bundle import train as train_module
from ichbundles.bundle.paths import BundleNotFoundError
from ichbundles.bundle.train import train_bundle, training_stages

TWO_STAGES = [["train.yaml"], ["train.yaml", "fit.yaml"]]


def _bundle(tmp_path: Path, stages: object = None) -> Path:
    configs = tmp_path / "bundle" / "configs"
    configs.mkdir(parents=True)
    metadata = {"version": "0.1.0"}
    if stages is not None:
        metadata["training_stages"] = stages
    (configs / "metadata.json").write_text(json.dumps(metadata))
    (configs / "train.yaml").write_text("epochs: 3\nresume: false\nmodel: {width: 2}\n")
    (configs / "fit.yaml").write_text("fit: {iterations: 10}\n")
    return configs.parent


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        (None, [["train.yaml"]]),
        (TWO_STAGES, TWO_STAGES),
    ],
)
def test_stages_from_metadata_or_train_yaml_alone(tmp_path, stages, expected):
    found = training_stages(_bundle(tmp_path, stages))
    assert [[f.name for f in stage] for stage in found] == expected
    assert all(f.is_file() for stage in found for f in stage)


def test_existing_bundles_stages():
    assert [[f.name for f in s] for s in training_stages("ich_cnn_lstm")] == [["train.yaml"]]
    names = [[f.name for f in s] for s in training_stages("ich_attention_mil")]
    assert names == [["train.yaml"], ["train.yaml", "vgpmil.yaml"]]


@pytest.mark.parametrize("stages", [[], "train.yaml", [[]], [["train.yaml", 3]]])
def test_malformed_stages_raise(tmp_path, stages):
    with pytest.raises(ValueError, match="training_stages"):
        training_stages(_bundle(tmp_path, stages))


def test_a_stage_naming_a_missing_config_raises(tmp_path):
    with pytest.raises(BundleNotFoundError, match=r"configs/missing\.yaml"):
        training_stages(_bundle(tmp_path, [["train.yaml"], ["missing.yaml"]]))


@pytest.fixture
def runs(monkeypatch, tmp_path) -> list[dict]:
    """Replace the bundle runner: record each call and leave a best checkpoint behind."""
    calls: list[dict] = []

    def run(config_file, logging_file=None, **settings):
        calls.append({"config_file": config_file, **settings})
        best = Path(settings["output_dir"]) / "models" / "model.pt"
        best.parent.mkdir(parents=True, exist_ok=True)
        best.touch()

    monkeypatch.setattr(train_module, "run_bundle", run)
    return calls


def test_stages_run_in_order_with_shared_settings(tmp_path, runs):
    bundle = _bundle(tmp_path, TWO_STAGES)
    overrides = ["model#width=4", "fit#iterations=5"]
    best = train_bundle(bundle, tmp_path, tmp_path / "out", 2, overrides, resume=True)

    assert best == (tmp_path / "out" / "models" / "model.pt").resolve()
    assert [[Path(f).name for f in c["config_file"]] for c in runs] == TWO_STAGES
    assert [c["resume"] for c in runs] == [True, False]
    assert all(c["epochs"] == 2 and c["model#width"] == 4 for c in runs)
    assert "fit#iterations" not in runs[0] and runs[1]["fit#iterations"] == 5
    saved = json.loads((tmp_path / "out" / "fit_config.json").read_text())
    assert saved["fit"]["iterations"] == 5 and saved["model"]["width"] == 4
    assert json.loads((tmp_path / "out" / "train_config.json").read_text())["resume"] is True


def test_override_no_stage_takes_fails_before_training(tmp_path, runs):
    with pytest.raises(ValueError, match="fti#iterations"):
        train_bundle(_bundle(tmp_path), tmp_path, tmp_path / "out", overrides=["fti#iterations=5"])
    assert runs == []
