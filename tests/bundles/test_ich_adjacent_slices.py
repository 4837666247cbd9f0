"""The ich_adjacent_slices bundle run as users run it, on tiny synthetic data: all stages through
``train_bundle`` (stage 1, k-fold stage 1 models, descriptors, fusion), resumed, evaluated,
predicted and exported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from monai.bundle import ConfigParser, verify_metadata
from monai.bundle import run as run_bundle
from monai.transforms import Compose

from ichbundles import cli
from ichbundles.adjacent import descriptor_file, descriptor_sources, read_descriptors
from ichbundles.bundle import train_bundle
from ichbundles.bundle.checkpoint import FORMAT, read_checkpoint, read_state_dict
from ichbundles.bundle.data import fold_items, folder_datalist, split_items
from ichbundles.bundle.report import file_sha256, validate_report
from ichbundles.constants import ICH_CLASSES
from ichbundles.networks import AdjacentSliceNet, SliceClassifier
from ichbundles.transforms import scan_preprocessing

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "ich_adjacent_slices"
CONFIGS = BUNDLE / "configs"
SCANS = 8
TINY = ["image_size=64", "batch_size=2", "blocks_per_batch=4", "fusion_epochs=2"]
STAGES = ["train", "fold_fold0", "fold_fold1", "descriptors", "fusion"]


@pytest.fixture(scope="module")
def data(synthetic_folder) -> Path:
    return synthetic_folder("data", SCANS, seed=0)


@pytest.fixture(scope="module")
def test_data(synthetic_folder) -> Path:
    return synthetic_folder("test_data", 3, seed=1)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> Path:
    """Every stage with k = 2 folds, one epoch each."""
    out = tmp_path_factory.mktemp("run")
    best = train_bundle("ich_adjacent_slices", data, out, epochs=1, overrides=[*TINY, "folds=2"])
    assert best == out.resolve() / "models" / "model.pt"
    return out


def _stage_state(out: Path, stage: str) -> dict:
    return read_state_dict(out / "models" / stage / "model.pt")


def test_stages_write_their_checkpoints_and_the_joined_model(trained):
    progress = json.loads((trained / "training_stages.json").read_text())
    assert progress["finished"] == STAGES
    for stage in ("stage1", "fold0", "fold1", "fusion"):
        assert (trained / "models" / stage / "checkpoint_last.pt").is_file()
    saved = torch.load(trained / "models" / "model.pt", weights_only=True)
    assert set(saved) == {"model", "settings"}
    assert saved["settings"] == {
        "format": FORMAT,
        "bundle": "ich_adjacent_slices",
        "backbone": "resnet10_tiny",
        "image_size": 64,
        "windows": "adjacent",
        "context": 3,
        "fusion_channels": [32, 32],
        "fusion_logit_inputs": True,
    }
    joined = saved["model"]
    net = AdjacentSliceNet("resnet10_tiny")
    net.load_state_dict(joined)  # strict: both stages, nothing else
    # every stage's checkpoint carries the settings too
    for stage in ("stage1", "fold0", "fusion"):
        assert read_checkpoint(trained / "models" / stage / "model.pt")[1] == saved["settings"]
    stage1 = _stage_state(trained, "stage1")
    fusion = _stage_state(trained, "fusion")
    for key, value in stage1.items():
        assert torch.equal(joined[f"stage1.{key}"], value)
    for key, value in fusion.items():
        assert torch.equal(joined[f"fusion.{key}"], value)
    # the fold models are other models than the main one
    fold0 = _stage_state(trained, "fold0")
    assert not torch.equal(fold0["classifier.weight"], stage1["classifier.weight"])


def test_each_scan_is_described_by_a_model_that_did_not_train_on_it(trained, data):
    datalist = folder_datalist(data)
    train = split_items(datalist, 0.2, "train")
    expected = {i["name"]: "stage1" for i in split_items(datalist, 0.2, "validation")}
    for fold in range(2):
        expected |= {i["name"]: f"fold{fold}" for i in fold_items(train, 2, fold, "validation")}
    assert len(expected) == SCANS
    preprocessing = Compose(scan_preprocessing("image", "adjacent", 64))
    for item in datalist:
        content = read_descriptors(descriptor_file(trained / "descriptors", item["name"]))
        source = expected[item["name"]]
        assert content["source"] == source
        folder = "stage1" if source == "stage1" else source
        checkpoint = trained / "models" / folder / "model.pt"
        assert content["checkpoint_sha256"] == file_sha256(checkpoint)
        if item["name"] == datalist[0]["name"]:  # the stored values are that model's output
            net = SliceClassifier("resnet10_tiny").eval()
            net.load_state_dict(read_state_dict(checkpoint))
            image = torch.as_tensor(np.asarray(preprocessing(dict(item))["image"]))
            with torch.inference_mode():
                expected_probs = torch.sigmoid(net(image)).numpy()
            np.testing.assert_allclose(content["descriptors"], expected_probs, atol=1e-4)
    index = json.loads((trained / "descriptors" / "descriptors.json").read_text())
    assert index["computed"] == SCANS and set(index["sources"]) == {"stage1", "fold0", "fold1"}


def test_stage_runs_are_nested_under_one_parent_run(trained):
    progress = json.loads((trained / "training_stages.json").read_text())
    client = mlflow.MlflowClient(f"sqlite:///{trained.resolve()}/mlruns.db")
    experiment = client.get_experiment_by_name("ich_adjacent_slices")
    runs = client.search_runs([experiment.experiment_id])
    parent = client.get_run(progress["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.params["stages"] == "5"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    names = sorted(r.info.run_name.rsplit("_", 2)[0] for r in children)
    assert names == ["descriptors", "fusion", "stage1", "stage1_fold0", "stage1_fold1"]
    assert len(runs) == len(children) + 1
    fusion = next(r for r in children if r.info.run_name.startswith("fusion"))
    assert "val_wll" in fusion.data.metrics and fusion.data.params["stage"] == "fusion"


def test_resume_runs_only_what_is_left(trained, data, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(trained, out)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "models").rglob("*.pt")}
    # as if fusion had been stopped after its 2 epochs: resume it to 3
    progress = json.loads((out / "training_stages.json").read_text())
    progress["finished"].remove("fusion")
    (out / "training_stages.json").write_text(json.dumps(progress))
    overrides = [*TINY, "folds=2", "fusion_epochs=3"]
    train_bundle("ich_adjacent_slices", data, out, epochs=1, overrides=overrides, resume=True)

    last = torch.load(out / "models" / "fusion" / "checkpoint_last.pt", weights_only=True)
    trainer = last["trainer"]
    assert trainer["iteration"] // trainer["epoch_length"] == 3
    # continued, not restarted: the resumed run validated once (epoch 3), not three times
    client = mlflow.MlflowClient(f"sqlite:///{out.resolve()}/mlruns.db")
    experiment = client.get_experiment_by_name("ich_adjacent_slices").experiment_id
    fusion_runs = [
        r for r in client.search_runs([experiment]) if r.info.run_name.startswith("fusion")
    ]
    newest = max(fusion_runs, key=lambda r: r.info.start_time)
    history = client.get_metric_history(newest.info.run_id, "val_wll")
    assert [m.step for m in history] == [3]
    assert newest.data.tags["mlflow.parentRunId"] == progress["parent_run_id"]
    changed = {p for p, t in stamps.items() if p.stat().st_mtime_ns != t}
    assert changed and all(p.parent.name == "fusion" or p.name == "model.pt" for p in changed)
    for stage in ("stage1", "fold0", "fold1"):
        assert out / "models" / stage / "model.pt" not in changed
    # the descriptors stage again: every file is reused
    configs = [str(CONFIGS / "train.yaml"), str(CONFIGS / "descriptors.yaml")]
    run_bundle(
        config_file=configs,
        bundle_root=str(BUNDLE),
        dataset_dir=str(data),
        output_dir=str(out),
        image_size=64,
        folds=2,
        tracking_enabled=False,
    )
    index = json.loads((out / "descriptors" / "descriptors.json").read_text())
    assert index["computed"] == 0 and index["reused"] == SCANS


@pytest.mark.parametrize(
    ("files", "stage", "settings"),
    [
        (["train.yaml"], "stage1", {}),
        (["train.yaml", "fold.yaml"], "fold1", {"fold": 1}),
        (["train.yaml", "fusion.yaml"], "fusion", {}),
    ],
)
def test_init_from_starts_each_stage_from_its_own_earlier_weights(
    trained, data, tmp_path, files, stage, settings
):
    out = tmp_path / "finetune"
    shutil.copytree(trained / "descriptors", out / "descriptors")  # the fusion's training data

    def initialised_weights(**extra) -> dict:
        parser = ConfigParser()
        parser.read_config([str(CONFIGS / f) for f in files])
        parser.update(
            {
                "bundle_root": str(BUNDLE),
                "dataset_dir": str(data),
                "output_dir": str(out),
                "image_size": 64,
                "folds": 2,
                "tracking_enabled": False,
                **settings,
                **extra,
            }
        )
        parser.get_parsed_content("initialize")
        return parser.get_parsed_content("network").state_dict()

    earlier = _stage_state(trained, stage)
    warm = initialised_weights(init_from=str(trained))
    assert warm.keys() == earlier.keys()
    assert all(torch.equal(warm[k], earlier[k]) for k in earlier)
    cold = initialised_weights()
    assert not all(torch.equal(cold[k], earlier[k]) for k in earlier)


@pytest.mark.parametrize(
    ("progress", "extra", "fragment"),
    [
        # the earlier run's record, but none of its checkpoints
        (True, [], "models/stage1/model.pt"),
        # not an `ichbundles train` output
        (False, [], "training_stages.json; give an `ichbundles train` output folder"),
        # another split: its models trained on this run's validation scans
        (True, ["val_fraction=0.5"], "training_stages.json: init_from was trained with"),
        # a model file: each of the stages starts from a model of its own
        ("file", [], "is a file; this bundle trains several stages"),
    ],
)
def test_unusable_init_from_exits_2_before_training(
    trained, data, tmp_path, capsys, root_logging, progress, extra, fragment
):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    if progress:
        shutil.copy(trained / "training_stages.json", earlier)
    if progress == "file":
        earlier = trained / "models" / "model.pt"
    argv = ["train", "ich_adjacent_slices", "--data", str(data), "--output", str(tmp_path / "o")]
    overrides = [*TINY, "folds=2", "tracking_enabled=False", f"init_from={earlier}", *extra]
    assert cli.main([*argv, "--epochs", "1", *overrides]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0]
    assert not (tmp_path / "o" / "models" / "stage1" / "model.pt").exists()


def test_one_fold_trains_no_fold_models(data, tmp_path):
    overrides = [*TINY, "folds=1", "tracking_enabled=false"]
    train_bundle("ich_adjacent_slices", data, tmp_path, epochs=1, overrides=overrides)
    assert not list((tmp_path / "models").glob("fold*"))
    progress = json.loads((tmp_path / "training_stages.json").read_text())
    assert progress["finished"] == ["train", "descriptors", "fusion"]
    assert progress["parent_run_id"] is None
    sources = json.loads((tmp_path / "descriptors" / "descriptors.json").read_text())["sources"]
    assert list(sources) == ["stage1"] and sources["stage1"]["computed"] == SCANS


@pytest.mark.parametrize("fold", [0, 1])
def test_fold_models_neither_train_nor_validate_on_the_scans_they_describe(data, fold):
    def parsed(files: list[str], **settings) -> ConfigParser:
        parser = ConfigParser()
        parser.read_config([str(CONFIGS / f) for f in files])
        parser.update({"bundle_root": str(BUNDLE), "dataset_dir": str(data), **settings})
        return parser

    main = parsed(["train.yaml"], folds=2)
    fold_config = parsed(["train.yaml", "fold.yaml"], folds=2, fold=fold)
    sources = descriptor_sources(
        main.get_parsed_content("datalist"), 0.2, 2, "s1.pt", "fold{fold}.pt"
    )
    described = {i["name"] for i in sources[fold + 1].items}
    trained_on = {i["name"] for i in fold_config.get_parsed_content("train_items")}
    validated_on = {i["name"] for i in fold_config.get_parsed_content("val_items")}
    assert described and trained_on and trained_on.isdisjoint(described)
    assert validated_on.isdisjoint(described)
    assert validated_on == {i["name"] for i in main.get_parsed_content("val_items")}
    assert trained_on | described == {i["name"] for i in main.get_parsed_content("train_items")}


@pytest.mark.parametrize("files", [["train.yaml"], ["train.yaml", "fold.yaml"]])
@pytest.mark.parametrize("cutmix_prob", [0.0, 0.5])
def test_cutmix_prob_reaches_every_stage_1_training(data, files, cutmix_prob):
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / f) for f in files])
    parser.update(
        {"bundle_root": str(BUNDLE), "dataset_dir": str(data), "cutmix_prob": cutmix_prob}
    )
    mixer = parser.get_parsed_content("train#prepare_batch").batch_transform
    assert mixer.prob == cutmix_prob
    assert parser.get_parsed_content("tracking_params")["cutmix_prob"] == cutmix_prob


def test_evaluate_lays_out_stage1_beside_fusion(trained, test_data, tmp_path):
    # an RSNA-style folder: slice labels only, scan labels are their maximum
    shutil.copytree(test_data, tmp_path / "test")
    (tmp_path / "test" / "scan_labels.csv").unlink()
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file"]
    cmd += [repr([str(CONFIGS / "train.yaml"), str(CONFIGS / "evaluate.yaml")])]
    cmd += ["--bundle_root", str(BUNDLE), "--dataset_dir", str(tmp_path / "test")]
    cmd += ["--output_dir", str(trained)]  # no network settings: they come from the checkpoint
    result = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    table = json.loads((trained / "eval" / "table.json").read_text())["columns"]
    assert list(table) == ["stage 1 (2D baseline)", "stage 1 + fusion"]
    for title, folder in zip(table, ("stage1", "fusion"), strict=True):
        metrics = json.loads((trained / "eval" / folder / "metrics" / "metrics.json").read_text())
        assert table[title]["slice_wll"] == metrics["slice_level"]["weighted_log_loss"]
        assert table[title]["scans"] == 3
    assert table["stage 1 (2D baseline)"]["slice_wll"] != table["stage 1 + fusion"]["slice_wll"]
    derived = pd.read_csv(trained / "eval" / "fusion" / "scan_labels.csv")
    truth = pd.read_csv(test_data / "scan_labels.csv")
    merged = derived.merge(truth, on="series_instance_uid", suffixes=("", "_truth"))
    assert len(merged) == 3
    for cls in ICH_CLASSES:
        assert (merged[cls] == merged[f"{cls}_truth"]).all()
    markdown = (trained / "eval" / "table.md").read_text()
    assert "| ICH (any subtypes) |" in markdown and "RSNA weighted log loss" in markdown


def _reports(folder: Path) -> dict[str, dict]:
    reports = [json.loads(p.read_text()) for p in folder.glob("*.json") if p.stem != "errors"]
    return {r["series"]["series_instance_uid"]: r for r in reports}


def test_predict_with_and_without_fusion(trained, test_data, tmp_path):
    series = [str(p) for p in sorted((test_data / "dicom").iterdir())[:2]]
    checkpoint = str(trained / "models" / "model.pt")
    runs = {}
    for name, extra in (("fused", []), ("stage1", ["use_fusion=false"])):
        argv = ["predict", "ich_adjacent_slices", "--checkpoint", checkpoint, "--input", *series]
        assert cli.main([*argv, "--output", str(tmp_path / name), *extra]) == 0
        runs[name] = _reports(tmp_path / name)
    assert len(runs["fused"]) == 2
    # MONAI's runner on inference.yaml gives the same reports as the command line
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file"]
    cmd += [str(CONFIGS / "inference.yaml"), "--bundle_root", str(BUNDLE)]
    cmd += ["--checkpoint", checkpoint, "--input_files", repr(series)]
    cmd += ["--output_dir", str(tmp_path / "runner")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    runner = _reports(tmp_path / "runner")
    assert runner.keys() == runs["fused"].keys()
    for uid, report in runs["fused"].items():
        for a, b in zip(report["slices"], runner[uid]["slices"], strict=True):
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)
    for uid, report in runs["fused"].items():
        validate_report(report)
        assert report["model"]["bundle"] == "ich_adjacent_slices"
        fused = [s["probabilities"]["any"] for s in report["slices"]]
        alone = [s["probabilities"]["any"] for s in runs["stage1"][uid]["slices"]]
        assert fused != pytest.approx(alone, abs=1e-4)


def test_predict_with_a_stage_checkpoint_fails_in_one_line(trained, test_data, capsys):
    series = str(sorted((test_data / "dicom").iterdir())[0])
    stage1 = str(trained / "models" / "stage1" / "model.pt")
    argv = ["predict", "ich_adjacent_slices", "--checkpoint", stage1, "--input", series]
    assert cli.main([*argv, "image_size=64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing key(s) (stage1.encoder" in err[0] and len(err[0]) < 600


@pytest.mark.parametrize(
    ("fmt", "extra"), [("onnx", []), ("torchscript", []), ("torchscript", ["use_fusion=false"])]
)
def test_export_both_stages_or_stage1_alone(trained, tmp_path, fmt, extra):
    out = tmp_path / f"model.{fmt}"
    argv = ["export", "ich_adjacent_slices", "--checkpoint", str(trained / "models" / "model.pt")]
    assert cli.main([*argv, "--format", fmt, "--out", str(out), "image_size=64", *extra]) == 0
    assert out.stat().st_size > 0  # export_model checked it against the eager network


def test_verify_metadata_offline():
    schema = BUNDLE.parent / "schema" / "meta_schema_20240725.json"
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(schema))
