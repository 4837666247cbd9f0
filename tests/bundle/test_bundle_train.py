"""Training stages of a bundle: read from its metadata, run in order with the same settings,
nested overrides given only to the stages that hold their parent (the runner is replaced)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from ichbundles.bundle import train as train_module
from ichbundles.bundle.paths import BundleNotFoundError
from ichbundles.bundle.train import PROGRESS_FILE, train_bundle, training_stages

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
    assert [[f.name for f in stage.configs] for stage in found] == expected
    assert all(f.is_file() for stage in found for f in stage.configs)


def test_existing_bundles_stages():
    stages = training_stages("ich_adjacent_slices")
    assert [[f.name for f in s.configs] for s in stages] == [
        ["train.yaml"],
        ["train.yaml", "fold.yaml"],
        ["train.yaml", "descriptors.yaml"],
        ["train.yaml", "fusion.yaml"],
    ]
    assert (stages[1].repeat, stages[1].times) == ("fold", "fold_models")
    assert [[f.name for f in s.configs] for s in training_stages("ich_cnn_lstm")] == [
        ["train.yaml"]
    ]
    names = [[f.name for f in s.configs] for s in training_stages("ich_attention_mil")]
    assert names == [["train.yaml"], ["train.yaml", "vgpmil.yaml"]]


@pytest.mark.parametrize(
    "stages",
    [
        [],
        "train.yaml",
        [[]],
        [["train.yaml", 3]],
        [{"configs": ["train.yaml"], "repeat": "fold"}],
        [{"configs": [], "repeat": "fold", "times": "n"}],
    ],
)
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


REPEATED = [
    ["train.yaml"],
    {"configs": ["train.yaml", "fold.yaml"], "repeat": "fold", "times": "fold_models"},
    ["train.yaml", "fit.yaml"],
]


def _repeated_bundle(tmp_path: Path, tracking: str = "") -> Path:
    bundle = _bundle(tmp_path, REPEATED)
    (bundle / "configs" / "train.yaml").write_text(
        "epochs: 3\nresume: false\nfolds: 3\nfold_models: '$@folds if @folds > 1 else 0'\n"
        "output_dir: .\ntrain: {checkpoint_loader: {load_path: \"$@output_dir + '/last.pt'\"}}\n"
        + tracking
    )
    (bundle / "configs" / "fold.yaml").write_text("fold: 0\n")
    return bundle


@pytest.mark.parametrize(("folds", "expected"), [(3, [0, 1, 2]), (1, [])])
def test_a_repeated_stage_runs_once_per_index(tmp_path, runs, folds, expected):
    train_bundle(
        _repeated_bundle(tmp_path), tmp_path, tmp_path / "out", overrides=[f"folds={folds}"]
    )
    names = [[Path(f).name for f in c["config_file"]] for c in runs]
    assert names == [["train.yaml"]] + [["train.yaml", "fold.yaml"]] * len(expected) + [
        ["train.yaml", "fit.yaml"]
    ]
    assert [c["fold"] for c in runs if "fold" in c] == expected
    progress = json.loads((tmp_path / "out" / "training_stages.json").read_text())
    assert progress["finished"] == ["train", *(f"fold_fold{i}" for i in expected), "fit"]
    assert all((tmp_path / "out" / f"fold_fold{i}_config.json").is_file() for i in expected)


def test_resume_skips_finished_stages_and_resumes_the_interrupted_one(tmp_path, runs, monkeypatch):
    bundle, out = _repeated_bundle(tmp_path), tmp_path / "out"
    original = train_module.run_bundle

    def fail_on_fold1(config_file, logging_file=None, **settings):
        if settings.get("fold") == 1:
            raise KeyboardInterrupt  # the user stops training during fold 1
        original(config_file, logging_file, **settings)

    monkeypatch.setattr(train_module, "run_bundle", fail_on_fold1)
    with pytest.raises(KeyboardInterrupt):
        train_bundle(bundle, tmp_path, out)
    assert [c.get("fold") for c in runs] == [None, 0]

    monkeypatch.setattr(train_module, "run_bundle", original)
    runs.clear()
    (out / "last.pt").write_bytes(b"fold 1 after some epochs")
    train_bundle(bundle, tmp_path, out, resume=True)
    assert [c.get("fold") for c in runs] == [1, 2, None]
    assert [c["resume"] for c in runs] == [True, False, False]
    runs.clear()
    train_bundle(bundle, tmp_path, out, resume=True)  # everything done: nothing runs
    assert runs == []
    train_bundle(bundle, tmp_path, out)  # without resume every stage runs again
    assert len(runs) == 5


def test_resume_refuses_other_split_settings(tmp_path, runs):
    bundle, out = _repeated_bundle(tmp_path), tmp_path / "out"
    train_bundle(bundle, tmp_path, out, overrides=["folds=3"])
    runs.clear()
    with pytest.raises(ValueError, match="resume with the same data and split settings"):
        train_bundle(bundle, tmp_path, out, overrides=["folds=2"], resume=True)
    assert runs == []


def test_a_fresh_run_removes_a_stale_last_checkpoint(tmp_path, runs, caplog):
    bundle, out = _repeated_bundle(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / "last.pt").write_bytes(b"an earlier training's")
    train_bundle(bundle, tmp_path, out, overrides=["folds=1"])
    assert not (out / "last.pt").exists()
    assert [c["resume"] for c in runs] == [False, False]
    runs.clear()
    train_bundle(bundle, tmp_path, out, overrides=["folds=1"], resume=True)
    assert runs == []  # all finished
    progress = json.loads((out / PROGRESS_FILE).read_text())
    progress["finished"] = []
    (out / PROGRESS_FILE).write_text(json.dumps(progress))
    with caplog.at_level("WARNING"):
        train_bundle(bundle, tmp_path, out, overrides=["folds=1"], resume=True)
    assert [c["resume"] for c in runs] == [False, False]  # nothing to continue from
    assert "starts afresh" in caplog.text


def test_parent_run_is_killed_then_reopened_and_finished(tmp_path, runs, monkeypatch):
    store = f"sqlite:///{tmp_path}/mlruns.db"
    tracking = f"tracking_enabled: true\ntracking_uri: {store}\nexperiment_name: stages\n"
    bundle, out = _repeated_bundle(tmp_path, tracking), tmp_path / "out"
    original = train_module.run_bundle

    def interrupted(config_file, logging_file=None, **settings):
        if settings.get("fold") == 1:
            raise KeyboardInterrupt
        original(config_file, logging_file, **settings)

    monkeypatch.setattr(train_module, "run_bundle", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_bundle(bundle, tmp_path, out)
    parent_id = json.loads((out / PROGRESS_FILE).read_text())["parent_run_id"]
    client = mlflow.MlflowClient(store)
    assert client.get_run(parent_id).info.status == "KILLED"
    assert all(c["parent_run_id"] == parent_id for c in runs)

    monkeypatch.setattr(train_module, "run_bundle", original)
    train_bundle(bundle, tmp_path, out, resume=True)
    assert client.get_run(parent_id).info.status == "FINISHED"
    assert runs[-1]["parent_run_id"] == parent_id
    (experiment,) = [e for e in client.search_experiments() if e.name == "stages"]
    assert len(client.search_runs([experiment.experiment_id])) == 1  # no second parent
