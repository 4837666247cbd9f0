"""The ich_cnn_lstm bundle's training workflows, run as users run them, on tiny synthetic data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
from monai.bundle import ConfigParser

from ichbundles import cli
from ichbundles.bundle import train_bundle
from ichbundles.bundle.checkpoint import FORMAT, read_state_dict
from ichbundles.bundle.tracking import SafeMLFlowHandler
from ichbundles.constants import PREPROCESSING_VERSION
from ichbundles.networks import CNNLSTM

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "ich_cnn_lstm"
CONFIGS = BUNDLE / "configs"
TINY = ["--backbone", "resnet10_tiny", "--hidden", "16", "--image_size", "64"]
TINY += ["--encoder_warmup_epochs", "1", "--warmup_scans_per_batch", "2"]
TINY_OVERRIDES = ["backbone=resnet10_tiny", "hidden=16", "image_size=64"]
#: What a checkpoint trained with TINY carries: not the config's defaults.
TINY_SETTINGS = {
    "format": FORMAT,
    "bundle": "ich_cnn_lstm",
    "backbone": "resnet10_tiny",
    "hidden": 16,
    "lstm_layers": 2,
    "dropout": 0.0,
    "image_size": 64,
    "windows": "adjacent",
}


def _bundle_run(
    configs: list[str],
    data: Path,
    out: Path,
    *args: str,
    env: dict | None = None,
    tiny: bool = True,
):
    files = [str(CONFIGS / c) for c in configs]
    config = files[0] if len(files) == 1 else repr(files)
    cmd = ["-m", "monai.bundle", "run", "--config_file", config, "--bundle_root", str(BUNDLE)]
    cmd += ["--dataset_dir", str(data), "--output_dir", str(out), *(TINY if tiny else []), *args]
    return subprocess.run(
        [sys.executable, *cmd], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def _epoch(checkpoint: Path) -> int:
    state = torch.load(checkpoint, weights_only=True)["trainer"]
    return state["iteration"] // state["epoch_length"]


def _ok(result: subprocess.CompletedProcess) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


@pytest.fixture(scope="module")
def data(synthetic_folder) -> Path:
    return synthetic_folder("train_data", 6, seed=0)


@pytest.fixture(scope="module")
def test_data(synthetic_folder) -> Path:
    return synthetic_folder("test_data", 3, seed=1)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("run")
    return out, _ok(_bundle_run(["train.yaml"], data, out, "--epochs", "2"))


def test_train_writes_loadable_best_and_last_checkpoints(trained):
    out, log = trained
    net = CNNLSTM("resnet10_tiny", hidden=16)
    best = torch.load(out / "models" / "model.pt", weights_only=True)
    assert set(best) == {"model", "settings"} and best["settings"] == TINY_SETTINGS
    net.load_state_dict(best["model"])
    last = torch.load(out / "models" / "checkpoint_last.pt", weights_only=True)
    keys = {"network", "optimizer", "lr_scheduler", "trainer", "best_model", "settings"}
    assert set(last) == keys
    assert last["settings"] == TINY_SETTINGS
    assert last["best_model"]["best_metric_epoch"] in (1, 2)
    assert _epoch(out / "models" / "checkpoint_last.pt") == 2
    assert "Key metric: val_wll best value" in log
    assert "encoder warm-up" in log
    assert net(torch.rand(1, 4, 3, 64, 64)).shape == (1, 4, 6)


def test_train_caches_preprocessed_scans(trained):
    out, _ = trained
    assert len(list((out / "cache" / f"adjacent_64_v{PREPROCESSING_VERSION}").glob("*.pt"))) == 6


def test_mlflow_run_has_params_and_per_epoch_metrics(trained):
    out, _ = trained
    client = mlflow.MlflowClient(f"sqlite:///{out}/mlruns.db")
    experiment = client.get_experiment_by_name("ich_cnn_lstm")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["backbone"] == "resnet10_tiny"
    assert run.data.params["n_train_scans"] == "4" and run.data.params["n_val_scans"] == "2"
    history = client.get_metric_history(run.info.run_id, "val_wll")
    assert [m.step for m in history] == [1, 2]
    assert len(client.get_metric_history(run.info.run_id, "val_mean_auc")) == 2
    assert client.get_metric_history(run.info.run_id, "train_loss")
    assert "model.pt" in [a.path for a in client.list_artifacts(run.info.run_id)]


def _val_wll(log: str) -> dict[int, float]:
    pattern = r"Epoch\[(\d+)\] Metrics -- .*?val_wll: ([\d.]+)"
    return {int(epoch): float(value) for epoch, value in re.findall(pattern, log)}


def test_resume_continues_from_last_checkpoint(trained, data):
    out, first_log = trained
    log = _ok(_bundle_run(["train.yaml"], data, out, "--epochs", "3", "--resume", "True"))
    assert _epoch(out / "models" / "checkpoint_last.pt") == 3
    assert "Epoch[3] Metrics" in log and "Epoch[1] Metrics" not in log
    # the best of all three epochs, not of the resumed one alone
    scores = {**_val_wll(first_log), **_val_wll(log)}
    record = torch.load(out / "models" / "checkpoint_last.pt", weights_only=True)["best_model"]
    assert sorted(scores) == [1, 2, 3]  # logged with 4 decimals
    assert record["best_metric"] == pytest.approx(min(scores.values()), abs=1e-4)
    assert scores[record["best_metric_epoch"]] == pytest.approx(record["best_metric"], abs=1e-4)


def test_evaluate_writes_predictions_and_metrics(trained, test_data):
    out, _ = trained
    # no network settings given: they come from the checkpoint
    _ok(_bundle_run(["train.yaml", "evaluate.yaml"], test_data, out, tiny=False))
    predictions = pd.read_csv(out / "eval" / "predictions.csv")
    labels = pd.read_csv(test_data / "labels.csv")
    assert sorted(predictions["ID"]) == sorted(labels["ID"])
    assert predictions["Label"].between(0, 1).all()
    scans = pd.read_csv(out / "eval" / "scan_predictions.csv")
    assert len(scans) == 3
    metrics = json.loads((out / "eval" / "metrics" / "metrics.json").read_text())
    assert "slice_level" in metrics


def test_broken_tracking_uri_does_not_fail_training(data, tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    broken = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/a_file/mlruns.db"}
    log = _ok(_bundle_run(["train.yaml"], data, tmp_path / "out", "--epochs", "1", env=broken))
    assert "MLflow tracking disabled, training goes on" in log
    assert (tmp_path / "out" / "models" / "model.pt").is_file()


def test_tracking_can_be_switched_off(data, tmp_path):
    parser = ConfigParser()
    parser.read_config(CONFIGS / "train.yaml")
    parser.update(
        {"dataset_dir": str(data), "output_dir": str(tmp_path), "tracking_enabled": False}
    )
    for handlers in ("train#handlers", "validate#handlers"):
        built = parser.get_parsed_content(handlers, instantiate=True)
        assert not any(isinstance(h, SafeMLFlowHandler) for h in built)


def test_two_process_gloo_training(data, tmp_path):
    files = repr([str(CONFIGS / "train.yaml"), str(CONFIGS / "multi_gpu_train.yaml")])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    cmd += ["-m", "monai.bundle", "run", "--config_file", files, "--bundle_root", str(BUNDLE)]
    cmd += ["--dataset_dir", str(data), "--output_dir", str(tmp_path), *TINY]
    log = _ok(subprocess.run([*cmd, "--epochs", "1"], capture_output=True, text=True))
    assert "MLflow tracking disabled" not in log
    net = CNNLSTM("resnet10_tiny", hidden=16)
    net.load_state_dict(read_state_dict(tmp_path / "models" / "model.pt"))
    assert _epoch(tmp_path / "models" / "checkpoint_last.pt") == 1
    # resumed on two processes: the record covers both epochs
    resumed = [*cmd, "--epochs", "2", "--resume", "True"]
    scores = {
        **_val_wll(log),
        **_val_wll(_ok(subprocess.run(resumed, capture_output=True, text=True))),
    }
    last = torch.load(tmp_path / "models" / "checkpoint_last.pt", weights_only=True)
    assert sorted(scores) == [1, 2] and _epoch(tmp_path / "models" / "checkpoint_last.pt") == 2
    assert last["best_model"]["best_metric"] == pytest.approx(min(scores.values()), abs=1e-4)


def test_verify_metadata_offline():
    schema = BUNDLE.parent / "schema" / "meta_schema_20240725.json"
    cmd = [sys.executable, "-m", "monai.bundle", "verify_metadata"]
    cmd += ["--meta_file", str(CONFIGS / "metadata.json"), "--filepath", str(schema)]
    assert "metadata is verified with no error" in _ok(
        subprocess.run(cmd, capture_output=True, text=True)
    )


def test_train_bundle_by_name(data, tmp_path):
    best = train_bundle(
        "ich_cnn_lstm", data, tmp_path, epochs=1, overrides=[*TINY_OVERRIDES, "batch_size=3"]
    )
    assert best == tmp_path.resolve() / "models" / "model.pt" and best.is_file()
    saved = json.loads((tmp_path / "train_config.json").read_text())
    assert saved["batch_size"] == 3 and saved["epochs"] == 1
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path.resolve()}/mlruns.db")
    (run,) = client.search_runs([client.get_experiment_by_name("ich_cnn_lstm").experiment_id])
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert "train_config.json" in artifacts and run.data.params["batch_size"] == "3"


def test_a_trained_model_predicts_with_no_overrides(trained, test_data, tmp_path, capsys):
    """Trained at 64 px with resnet10_tiny and hidden 16 (none of them the defaults), the model
    brings its settings: predict needs no overrides, and a contradicting one is one line."""
    out, _ = trained
    series = [str(p) for p in sorted((test_data / "dicom").iterdir())[:2]]
    for name in ("model.pt", "checkpoint_last.pt"):
        argv = ["predict", "ich_cnn_lstm", "--checkpoint", str(out / "models" / name)]
        assert cli.main([*argv, "--output", str(tmp_path / name), "--input", *series]) == 0
        assert len(list((tmp_path / name).glob("*.json"))) == 3  # 2 reports and errors.json
    capsys.readouterr()
    checkpoint = out / "models" / "model.pt"
    argv = ["predict", "ich_cnn_lstm", "--checkpoint", str(checkpoint), "image_size=128"]
    assert cli.main([*argv, "--output", str(tmp_path / "no"), "--input", *series]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {checkpoint} was trained with image_size=64; the override says image_size=128"
    ]
    assert not (tmp_path / "no").exists()


def _start_weights(data: Path, out: Path, **settings) -> dict[str, torch.Tensor]:
    """The network's weights after train.yaml's ``initialize``, before any training step."""
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.yaml"))
    tiny = dict(zip(TINY[::2], TINY[1::2], strict=True))
    parser.update({k.removeprefix("--"): v for k, v in tiny.items()})
    parser.update({"bundle_root": str(BUNDLE), "dataset_dir": str(data), "output_dir": str(out)})
    parser.update({"hidden": 16, "image_size": 64, "encoder_warmup_epochs": 1, **settings})
    parser.get_parsed_content("initialize")
    return {k: v.clone() for k, v in parser.get_parsed_content("network").state_dict().items()}


@pytest.mark.parametrize("form", ["file", "folder"])
def test_init_from_starts_from_a_models_weights(trained, data, tmp_path, form):
    out, _ = trained
    init_from = out / "models" / "model.pt" if form == "file" else out
    started = _start_weights(data, tmp_path / "a", init_from=str(init_from))
    expected = read_state_dict(out / "models" / "model.pt")
    assert started.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(started[key], value, rtol=0, atol=0)
    fresh = _start_weights(data, tmp_path / "b")
    assert any(not torch.equal(fresh[k], expected[k]) for k in expected if expected[k].dim() > 1)


def test_init_from_a_model_of_other_settings_fails_in_one_line(trained, data, tmp_path):
    out, _ = trained
    checkpoint = out / "models" / "model.pt"
    with pytest.raises(RuntimeError) as raised:
        _start_weights(data, tmp_path, init_from=str(checkpoint), image_size=96)
    message = str(raised.value.__cause__ or raised.value)
    assert f"{checkpoint} was trained with image_size=64; this training says image_size=96" in (
        message
    )
