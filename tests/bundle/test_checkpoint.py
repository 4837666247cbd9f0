"""Checkpoints that carry their settings: saving through MONAI's savers, reading with one-line
errors, applying them in predict and export, shipped models and ``package_model``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.handlers import CheckpointSaver

from ichbundles import cli
from ichbundles.bundle.checkpoint import (
    FORMAT,
    ModelSettings,
    PackagedModel,
    check_settings,
    load_weights,
    package_model,
    read_checkpoint,
    shipped_checkpoint,
    trained_settings,
)
from ichbundles.bundle.handlers import LastCheckpointSaver
from ichbundles.bundle.paths import bundle_path
from ichbundles.bundle.predict import Predictor, load_bundle_config
from ichbundles.bundle.report import file_sha256, validate_report
from ichbundles.data.synthetic import generate_dataset

BUNDLE = "ich_cnn_lstm"
#: Settings other than the config's defaults (resnet18_small, 128, 256): a model trained with
#: them must predict with no overrides.
TINY = {"backbone": "resnet10_tiny", "hidden": 16, "image_size": 64}


class _Payload:
    """A pickle that would create ``path`` when loaded without weights_only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings of export
        yield


@pytest.fixture(scope="module")
def settings() -> dict:
    parser = load_bundle_config(BUNDLE, overrides=TINY)
    return parser.get_parsed_content("model_settings")


@pytest.fixture(scope="module")
def network(settings) -> torch.nn.Module:
    torch.manual_seed(0)
    return load_bundle_config(BUNDLE, overrides=TINY).get_parsed_content("network_def").eval()


@pytest.fixture(scope="module")
def checkpoint(network, settings, tmp_path_factory) -> Path:
    """A model as training writes it: ``{"model": weights, "settings": ...}``."""
    path = tmp_path_factory.mktemp("model") / "model.pt"
    torch.save(
        {"model": network.state_dict(), "settings": ModelSettings(settings).state_dict()}, path
    )
    return path


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("series")
    generate_dataset(out, 1, size=64, seed=3, progress=False)
    return next((out / "dicom").iterdir())


@pytest.fixture(scope="module")
def reference(checkpoint, series) -> dict:
    return Predictor(BUNDLE, checkpoint, device="cpu").predict(series)


def _slice_probabilities(report: dict) -> np.ndarray:
    return np.array([list(s["probabilities"].values()) for s in report["slices"]])


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def _bundle_copy(root: Path, model: Path | None = None) -> Path:
    """A copy of the bundle folder (without models/), with ``model`` as its shipped model."""
    copy = root / BUNDLE
    shutil.copytree(bundle_path(BUNDLE), copy, ignore=shutil.ignore_patterns("models"))
    if model is not None:
        (copy / "models").mkdir()
        shutil.copy(model, copy / "models" / "model.pt")
    return copy


def test_settings_round_trip_through_monai_checkpoint_saver(network, settings, tmp_path):
    saver = CheckpointSaver(
        str(tmp_path),
        {"model": network, "settings": ModelSettings({**settings, "fusion_channels": (8, 8)})},
        save_final=True,
        final_filename="model.pt",
    )
    engine = Engine(lambda engine, batch: None)
    saver.attach(engine)
    engine.run([0], max_epochs=1)
    saved = torch.load(tmp_path / "model.pt", weights_only=True)  # still a plain dict
    assert set(saved) == {"model", "settings"}
    weights, read = read_checkpoint(tmp_path / "model.pt")
    assert read == {"format": FORMAT, **settings, "fusion_channels": [8, 8]}
    assert weights.keys() == network.state_dict().keys()
    assert all(torch.equal(weights[k], v) for k, v in network.state_dict().items())
    assert trained_settings(tmp_path / "model.pt") == read
    assert trained_settings(tmp_path / "missing.pt") == {}


def test_last_checkpoint_carries_settings_and_is_accepted_by_predict(
    network, settings, series, reference, tmp_path
):
    optimizer = torch.optim.Adam(network.parameters())
    saver = LastCheckpointSaver(
        tmp_path,
        {"network": network, "optimizer": optimizer, "settings": ModelSettings(settings)},
        "checkpoint_last.pt",
    )
    saver(Engine(lambda engine, batch: None))
    weights, read = read_checkpoint(tmp_path / "checkpoint_last.pt")
    assert read["image_size"] == 64 and weights.keys() == network.state_dict().keys()
    report = Predictor(BUNDLE, tmp_path / "checkpoint_last.pt", device="cpu").predict(series)
    np.testing.assert_allclose(_slice_probabilities(report), _slice_probabilities(reference))


def test_a_model_predicts_with_its_own_settings_and_no_overrides(checkpoint, series, reference):
    validate_report(reference)
    predictor = Predictor(BUNDLE, checkpoint, device="cpu")
    assert predictor.settings["image_size"] == 64
    assert predictor.network.sequence.lstm.hidden_size == 16
    assert predictor.preprocessing({"image": series})["image"].shape[-2:] == (64, 64)


def test_wrapped_and_bare_checkpoints_still_load(checkpoint, network, series, reference, tmp_path):
    prefixed = {f"module.{k}": v for k, v in network.state_dict().items()}
    torch.save({"model": prefixed, "epoch": 3}, tmp_path / "wrapped.pt")
    torch.save(network.state_dict(), tmp_path / "bare.pt")
    assert read_checkpoint(tmp_path / "wrapped.pt")[1] == {}
    for name in ("wrapped.pt", "bare.pt"):  # no settings: the overrides give them
        report = Predictor(BUNDLE, tmp_path / name, device="cpu", overrides=TINY).predict(series)
        np.testing.assert_allclose(_slice_probabilities(report), _slice_probabilities(reference))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"image_size": 128}, "was trained with image_size=64; the override says image_size=128"),
        ({"network_def#hidden": 8}, "was trained with hidden=16; the override says hidden=8"),
    ],
)
def test_an_override_that_contradicts_the_checkpoint_is_one_line(
    checkpoint, series, tmp_path, capsys, override, message
):
    with pytest.raises(ValueError, match=message):
        Predictor(BUNDLE, checkpoint, device="cpu", overrides=override)
    Predictor(BUNDLE, checkpoint, device="cpu", overrides={"image_size": 64})  # agreeing: fine
    words = [f"{k}={v}" for k, v in override.items()]
    out = tmp_path / "p"
    argv = ["predict", BUNDLE, "--checkpoint", str(checkpoint), "--output", str(out), *words]
    assert cli.main([*argv, "--input", str(series)]) == 2
    line = _one_error_line(capsys)
    assert str(checkpoint) in line and message in line
    assert not out.exists()
    argv = ["export", BUNDLE, "--checkpoint", str(checkpoint), "--format", "torchscript"]
    assert cli.main([*argv, "--out", str(tmp_path / "m.ts"), *words]) == 2
    assert message in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def _write_bad(path: Path, kind: str, good: Path) -> str:
    """Write a damaged checkpoint of ``kind``; returns the expected message fragment."""
    if kind == "text":
        path.write_text("this is a note, not a model\n")
        return "not a PyTorch checkpoint (a text file)"
    if kind == "empty":
        path.write_bytes(b"")
        return "empty file, not a checkpoint"
    if kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return "truncated or damaged checkpoint"
    if kind == "malicious":
        torch.save({"model": _Payload(path.with_name("pwned"))}, path)
        return "refused: it holds Python objects that a weights-only load does not allow"
    if kind == "other_bundle":
        state = torch.load(good, weights_only=True)
        state["settings"]["bundle"] = "ich_attention_mil"
        torch.save(state, path)
        return "a checkpoint of ich_attention_mil, not of ich_cnn_lstm"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["text", "empty", "truncated", "malicious", "other_bundle"])
def test_a_bad_checkpoint_is_one_line_naming_the_file(checkpoint, series, tmp_path, capsys, kind):
    bad = tmp_path / "bad.pt"
    fragment = _write_bad(bad, kind, checkpoint)
    with pytest.raises(ValueError, match="^" + re.escape(str(bad))) as caught:
        Predictor(BUNDLE, bad, device="cpu")
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    out = tmp_path / "p"
    argv = ["predict", BUNDLE, "--checkpoint", str(bad), "--output", str(out)]
    assert cli.main([*argv, "--input", str(series)]) == 2
    line = _one_error_line(capsys)
    assert str(bad) in line and fragment in line
    argv = ["export", BUNDLE, "--checkpoint", str(bad), "--format", "torchscript"]
    assert cli.main([*argv, "--out", str(tmp_path / "m.ts")]) == 2
    assert fragment in _one_error_line(capsys)
    assert not out.exists() and not (tmp_path / "m.ts").exists()
    assert not (tmp_path / "pwned").exists()  # the payload never ran


def test_check_settings_names_both_values(checkpoint, settings):
    check_settings(checkpoint, settings)
    with pytest.raises(
        ValueError, match=r"trained with image_size=64, windows=adjacent; the config"
    ):
        check_settings(checkpoint, {**settings, "image_size": 256, "windows": "alis"})
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        check_settings(checkpoint.with_name("missing.pt"), settings)


def test_float16_weights_load_into_a_float32_network(network):
    half = {k: v.half() if v.is_floating_point() else v for k, v in network.state_dict().items()}
    target = load_bundle_config(BUNDLE, overrides=TINY).get_parsed_content("network_def")
    load_weights(target, half)
    for key, value in target.state_dict().items():
        assert value.dtype == network.state_dict()[key].dtype
        torch.testing.assert_close(value, half[key].to(value.dtype))


def test_packaged_float16_model_predicts_like_float32(checkpoint, series, reference, tmp_path):
    shipped = package_model(checkpoint, tmp_path / "models" / "model.pt", half=True)
    assert isinstance(shipped, PackagedModel)
    assert shipped.sha256 == file_sha256(shipped.path)
    assert shipped.size_bytes == shipped.path.stat().st_size < checkpoint.stat().st_size
    assert [p.name for p in shipped.path.parent.iterdir()] == ["model.pt"]  # no temporary left
    assert shipped.path.stat().st_mode & 0o644 == 0o644  # readable by every user of an install
    weights, settings = read_checkpoint(shipped.path)
    assert settings == read_checkpoint(checkpoint)[1]
    assert {v.dtype for v in weights.values() if v.is_floating_point()} == {torch.float16}
    report = Predictor(BUNDLE, shipped.path, device="cpu").predict(series)
    difference = np.abs(_slice_probabilities(report) - _slice_probabilities(reference)).max()
    assert difference <= 1e-2


def test_package_model_needs_settings(network, settings, tmp_path):
    torch.save({"network": network.state_dict(), "optimizer": {}}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="carries no settings"):
        package_model(tmp_path / "old.pt", tmp_path / "shipped.pt")
    shipped = package_model(tmp_path / "old.pt", tmp_path / "shipped.pt", settings=settings)
    assert read_checkpoint(shipped.path)[1] == {"format": FORMAT, **settings}
    with pytest.raises(ValueError, match="trained with image_size=64; the given settings say"):
        package_model(shipped.path, tmp_path / "again.pt", settings={**settings, "image_size": 32})


def test_predict_without_checkpoint_and_no_shipped_model_is_one_line(tmp_path, capsys, series):
    bundle = _bundle_copy(tmp_path)
    out = tmp_path / "p"
    assert cli.main(["predict", str(bundle), "--output", str(out), "--input", str(series)]) == 2
    line = _one_error_line(capsys)
    assert str(bundle / "models" / "model.pt") in line
    assert "ships no trained model" in line and "--checkpoint" in line
    assert not out.exists()
    argv = ["export", str(bundle), "--format", "torchscript", "--out", str(tmp_path / "m.ts")]
    assert cli.main(argv) == 2
    assert "ships no trained model" in _one_error_line(capsys)
    with pytest.raises(FileNotFoundError, match="ships no trained model"):
        shipped_checkpoint(bundle)


def test_predict_and_export_use_the_shipped_model_by_default(
    checkpoint, series, reference, tmp_path, capsys, monkeypatch
):
    bundle = _bundle_copy(tmp_path, checkpoint)
    assert shipped_checkpoint(bundle) == bundle / "models" / "model.pt"
    out = tmp_path / "p"
    assert cli.main(["predict", str(bundle), "--output", str(out), "--input", str(series)]) == 0
    assert "1 of 1 series predicted" in capsys.readouterr().out
    (report_file,) = [p for p in out.glob("*.json") if p.name != "errors.json"]
    report = json.loads(report_file.read_text())
    assert report["model"]["checkpoint_sha256"] == file_sha256(checkpoint)
    np.testing.assert_allclose(_slice_probabilities(report), _slice_probabilities(reference))
    # export writes into the current folder, never into the bundle
    monkeypatch.chdir(tmp_path)
    assert cli.main(["export", str(bundle), "--format", "torchscript"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / f"{BUNDLE}.ts")
    assert sorted(p.name for p in (bundle / "models").iterdir()) == ["model.pt"]
    extra = {"inference.json": ""}
    torch.jit.load(str(tmp_path / f"{BUNDLE}.ts"), _extra_files=extra)
    assert json.loads(extra["inference.json"])["image_size"] == 64  # the model's, not the default


def test_monai_bundle_run_uses_the_shipped_model_and_checks_its_settings(
    checkpoint, series, reference, tmp_path
):
    bundle = _bundle_copy(tmp_path, checkpoint)
    command = [
        sys.executable, "-m", "monai.bundle", "run",
        "--config_file", str(bundle / "configs" / "inference.yaml"), "--bundle_root", str(bundle),
        "--input_files", repr([str(series)]), "--output_dir", str(tmp_path / "o"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (report_file,) = [p for p in (tmp_path / "o").glob("*.json") if p.name != "errors.json"]
    report = json.loads(report_file.read_text())
    np.testing.assert_allclose(
        _slice_probabilities(report), _slice_probabilities(reference), atol=1e-5
    )
    contradicting = [*command, "--output_dir", str(tmp_path / "o2"), "--image_size", "128"]
    done = subprocess.run(contradicting, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode != 0
    expected = f"{bundle / 'models' / 'model.pt'} was trained with image_size=64; the config says"
    assert f"{expected} image_size=128" in done.stderr
    assert not list((tmp_path / "o2").glob("*.json"))
