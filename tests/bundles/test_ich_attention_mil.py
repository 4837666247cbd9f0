"""The ich_attention_mil bundle run as users run it, on tiny synthetic data: Phase 1 (Att-CNN)
with ``python -m monai.bundle run``, Phase 2 (VGPMIL) with the merged configs, and both through
``train_bundle``."""

from __future__ import annotations

import json
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

from ichbundles.bundle import train_bundle
from ichbundles.bundle.checkpoint import read_checkpoint, read_state_dict
from ichbundles.bundle.report import validate_report
from ichbundles.constants import PREPROCESSING_VERSION
from ichbundles.data.synthetic import generate_dataset
from ichbundles.mil import load_vgpmil
from ichbundles.networks import AttentionMIL

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "ich_attention_mil"
CONFIGS = BUNDLE / "configs"
SCANS = 8


def _bundle_run(configs: list[str], data: Path, out: Path, *args: str) -> str:
    files = [str(CONFIGS / c) for c in configs]
    config = files[0] if len(files) == 1 else repr(files)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config]
    cmd += ["--bundle_root", str(BUNDLE), "--dataset_dir", str(data), "--output_dir", str(out)]
    result = subprocess.run([*cmd, "--image_size", "64", *args], capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


@pytest.fixture(scope="module")
def data(synthetic_folder) -> Path:
    return synthetic_folder("data", SCANS, seed=0)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> Path:
    """The paper's setting ("any" alone): Phase 1 for 2 epochs, then Phase 2 on its best
    checkpoint, in one output folder. Phase 2 takes scan_outputs from the checkpoint."""
    out = tmp_path_factory.mktemp("run")
    _bundle_run(["train.yaml"], data, out, "--epochs", "2", "--scan_outputs", "1")
    _bundle_run(["train.yaml", "vgpmil.yaml"], data, out)
    return out


def _n_slices(data: Path) -> int:
    return len(pd.read_csv(data / "labels.csv")) // 6


def test_phase1_writes_loadable_checkpoints(trained):
    net = AttentionMIL(image_size=64)
    weights, settings = read_checkpoint(trained / "models" / "model.pt")
    net.load_state_dict(weights)
    assert settings["scan_outputs"] == 1 and settings["image_size"] == 64
    last = torch.load(trained / "models" / "checkpoint_last.pt", weights_only=True)
    assert set(last) == {"network", "optimizer", "trainer", "best_model", "settings"}
    assert last["trainer"]["iteration"] // last["trainer"]["epoch_length"] == 2
    assert net(torch.rand(2, 5, 3, 64, 64), torch.ones(2, 5, dtype=torch.bool)).shape == (2, 1)
    # one cache for training, validation and Phase 2: every scan once
    cache = trained / "cache" / f"att_mil_64_v{PREPROCESSING_VERSION}"
    assert len(list(cache.glob("*.pt"))) == SCANS


def test_phase2_fits_vgpmil_on_the_slices_of_every_scan(trained, data):
    models, settings = load_vgpmil(trained / "models")
    assert (trained / "models" / "vgpmil.npz").is_file() and list(models) == ["any"]
    assert settings["n_bags"] == SCANS and settings["n_instances"] == _n_slices(data)
    assert settings["input"] == "raw" and settings["experiment"] == "AL-nAw"
    assert settings["vgpmil"]["num_inducing"] == 200 and settings["vgpmil"]["lengthscale"] == 1.5
    model = models["any"]
    x = np.random.default_rng(0).normal(size=(30, 8))
    instance_p, bag_p = model.predict_proba(x, np.repeat(["a", "b", "c"], 10))
    assert instance_p.shape == (30,) and bag_p.shape == (3,)
    assert ((instance_p >= 0) & (instance_p <= 1)).all()


def test_both_phases_are_tracked_in_one_experiment(trained):
    client = mlflow.MlflowClient(f"sqlite:///{trained}/mlruns.db")
    experiment = client.get_experiment_by_name("ich_attention_mil")
    found = client.search_runs([experiment.experiment_id])
    runs = {r.info.run_name.split("_")[0]: r for r in found}
    assert set(runs) == {"train", "vgpmil"}
    assert all(r.info.status == "FINISHED" for r in runs.values())
    history = client.get_metric_history(runs["train"].info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2]
    vgpmil = runs["vgpmil"]
    assert vgpmil.data.params["input"] == "raw" and vgpmil.data.params["n_bags"] == str(SCANS)
    assert "fit_seconds_any" in vgpmil.data.metrics
    artifacts = {a.path for a in client.list_artifacts(vgpmil.info.run_id)}
    assert {"vgpmil.npz", "vgpmil.json"} <= artifacts


def test_evaluate_scores_both_phases_on_held_out_scans(trained, tmp_path):
    held_out = tmp_path / "test"
    generate_dataset(held_out, 4, size=64, seed=1, progress=False)
    out = tmp_path / "eval_run"
    (out / "models").mkdir(parents=True)
    shutil.copy(trained / "models" / "model.pt", out / "models")
    configs = ["train.yaml", "vgpmil.yaml", "evaluate.yaml"]
    # without a fitted VGPMIL only the Att-CNN is scored
    _bundle_run(configs, held_out, out, "--tracking_enabled", "False")
    only = json.loads((out / "eval" / "mil_metrics.json").read_text())
    assert list(only["methods"]) == ["Att-CNN/AL"]
    for name in ("vgpmil.npz", "vgpmil.json"):
        shutil.copy(trained / "models" / name, out / "models")
    printed = _bundle_run(configs, held_out, out)
    results = json.loads((out / "eval" / "mil_metrics.json").read_text())
    assert list(results["methods"]) == ["Att-CNN/AL", "Att-CNN+VGPMIL/AL-nAw"]
    assert results["n_scans"] == 4 and results["n_slices"] == _n_slices(held_out)
    for levels in results["methods"].values():
        assert levels["scan"]["n"] == 4 and levels["slice"]["n"] == _n_slices(held_out)
        for figures in levels.values():
            defined = [figures[f] for f in ("accuracy", "f1", "precision", "recall", "auc")]
            assert all(v is None or 0 <= v <= 1 for v in defined)
            assert figures["accuracy"] is not None
    table = (out / "eval" / "mil_table.md").read_text()
    assert "| scan-level | Att-CNN+VGPMIL AL-nAw | Att-CNN AL |" in table and table in printed
    client = mlflow.MlflowClient(f"sqlite:///{out}/mlruns.db")
    experiment = client.get_experiment_by_name("ich_attention_mil")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name.startswith("evaluate_")
    assert "vgpmil_AL-nAw_scan_accuracy" in run.data.metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"mil_metrics.json"}


@pytest.fixture(scope="module")
def trained6(data, tmp_path_factory) -> Path:
    """Both stages through ``train_bundle``: the default six scan outputs, mean pooling (nAL),
    one epoch."""
    out = tmp_path_factory.mktemp("run6")
    overrides = ["image_size=64", "pooling=mean", "vgpmil_params#max_iter=20"]
    best = train_bundle("ich_attention_mil", data, out, epochs=1, overrides=overrides)
    assert best == out.resolve() / "models" / "model.pt"
    return out


def test_train_bundle_runs_both_stages(trained6):
    tmp_path = trained6
    best = tmp_path / "models" / "model.pt"
    net = AttentionMIL(image_size=64, num_outputs=6, pooling="mean")
    net.load_state_dict(read_state_dict(best))
    models, settings = load_vgpmil(tmp_path / "models")
    assert len(models) == 6 and settings["experiment"] == "nAL"
    assert (tmp_path / "models" / "vgpmil_subdural.npz").is_file()
    # the VGPMILs record the settings of the network whose features they were fitted on
    recorded = settings["metadata"]["model_settings"]
    assert recorded == {k: v for k, v in read_checkpoint(best)[1].items() if k != "format"}
    assert recorded["scan_outputs"] == 6 and recorded["pooling"] == "mean"
    for stage in ("train", "vgpmil"):
        saved = json.loads((tmp_path / f"{stage}_config.json").read_text())
        assert saved["resume"] is False
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path.resolve()}/mlruns.db")
    (run,) = client.search_runs(
        [client.get_experiment_by_name("ich_attention_mil").experiment_id],
        filter_string="params.input = 'raw'",
    )
    assert "vgpmil_config.json" in [a.path for a in client.list_artifacts(run.info.run_id)]


def _reports(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if p.stem != "errors"]


def test_predict_reports_vgpmil_probabilities_and_attention(trained6, data, tmp_path):
    from ichbundles import cli

    series = sorted((data / "dicom").iterdir())[:2]
    checkpoint = trained6 / "models" / "model.pt"
    out = tmp_path / "cli"
    # no overrides: image size, pooling and outputs come from the checkpoint
    argv = ["predict", "ich_attention_mil", "--checkpoint", str(checkpoint), "--input"]
    argv += [*map(str, series), "--output", str(out)]
    assert cli.main(argv) == 0
    reports = _reports(out)
    assert len(reports) == 2 and json.loads((out / "errors.json").read_text()) == []
    for report in reports:
        validate_report(report)
        assert report["model"]["bundle"] == "ich_attention_mil"
        attention = [s["attention"] for s in report["slices"]]
        assert sum(attention) == pytest.approx(1.0, abs=1e-5)  # mean pooling: 1/S each
        assert attention == pytest.approx([1 / len(attention)] * len(attention), abs=1e-6)
        any_p = [s["probabilities"]["any"] for s in report["slices"]]
        assert len(set(any_p)) > 1  # VGPMIL on each slice's own features
    rows = pd.read_csv(out / "predictions.csv")
    assert len(rows) == 6 * sum(r["series"]["n_slices"] for r in reports)
    # the same config run by MONAI's runner gives the same reports
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file"]
    cmd += [str(CONFIGS / "inference.yaml"), "--bundle_root", str(BUNDLE)]
    cmd += ["--checkpoint", str(checkpoint), "--input_files", repr([str(p) for p in series])]
    cmd += ["--output_dir", str(tmp_path / "runner")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    runner = {r["series"]["series_instance_uid"]: r for r in _reports(tmp_path / "runner")}
    for report in reports:
        other = runner[report["series"]["series_instance_uid"]]
        validate_report(other)
        for a, b in zip(report["slices"], other["slices"], strict=True):
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)
            assert a["attention"] == pytest.approx(b["attention"], abs=1e-6)


def test_predict_needs_a_vgpmil_for_every_class(trained, data, tmp_path, capsys):
    from ichbundles import cli

    series = sorted((data / "dicom").iterdir())[0]
    out = tmp_path / "p"
    argv = ["predict", "ich_attention_mil", "--checkpoint", str(trained / "models" / "model.pt")]
    argv += ["--input", str(series), "--output", str(out), "image_size=64"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no VGPMIL for epidural" in err[0] and "scan_outputs=6" in err[0]
    assert not out.exists()


def test_vgpmil_of_another_network_or_a_contradicting_override_is_one_line(
    trained6, data, tmp_path, capsys
):
    from ichbundles import cli

    series = str(sorted((data / "dicom").iterdir())[0])
    models = tmp_path / "models"
    shutil.copytree(trained6 / "models", models)
    argv = ["predict", "ich_attention_mil", "--checkpoint", str(models / "model.pt")]
    argv += ["--output", str(tmp_path / "p")]
    assert cli.main([*argv, "pooling=attention", "--input", series]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {models / 'model.pt'} was trained with pooling=mean; the override says "
        "pooling=attention"
    ]
    settings = json.loads((models / "vgpmil.json").read_text())
    settings["metadata"]["model_settings"]["image_size"] = 128
    (models / "vgpmil.json").write_text(json.dumps(settings))
    assert cli.main([*argv, "--input", series]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(models / "vgpmil.json") in err[0]
    assert "features of a network with image_size=128; the model has image_size=64" in err[0]
    assert not (tmp_path / "p").exists()


def test_multi_gpu_config_indices_match_train_yaml():
    # multi_gpu_train.yaml names handlers by position: the first 2 run on every rank, MLflow
    # ones are switched off on ranks > 0
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.yaml"), str(CONFIGS / "multi_gpu_train.yaml")])
    train_handlers = parser["train#handlers"]
    assert train_handlers[0]["_target_"] == "ValidationHandler"
    assert train_handlers[1] == "@train#early_stop"
    assert "[: 2 if" in parser["train#trainer#train_handlers"]
    for handlers, index in (("train#handlers", 5), ("validate#handlers", 3)):
        assert parser[handlers][index]["_target_"].endswith("SafeMLFlowHandler")
        assert "dist.get_rank()" in parser[f"{handlers}#{index}#_disabled_"]


def test_verify_metadata_offline():
    schema = BUNDLE.parent / "schema" / "meta_schema_20240725.json"
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(schema))
