"""TorchScript and ONNX export of the ich_cnn_lstm bundle: same outputs as eager PyTorch."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ichbundles import cli
from ichbundles.bundle import export
from ichbundles.bundle.export import ExportMismatchError, check_export, export_error, export_model
from ichbundles.bundle.paths import bundle_config
from ichbundles.bundle.predict import load_bundle_config, load_weights

BUNDLE = "ich_cnn_lstm"
VERSION = json.loads(bundle_config(BUNDLE, "metadata.json").read_text())["version"]
TINY = {"network_def#backbone": "resnet10_tiny", "network_def#hidden": 16, "image_size": 64}
ATOL = 1e-4


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and ONNX exporter warnings
        yield


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    network = load_bundle_config(BUNDLE, overrides=TINY).get_parsed_content("network_def")
    path = tmp_path_factory.mktemp("model") / "model.pt"
    torch.save({"model": network.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def eager(checkpoint) -> torch.nn.Module:
    network = load_bundle_config(BUNDLE, overrides=TINY).get_parsed_content("network_def")
    return load_weights(network, checkpoint).eval()


def _scans(batch: int, slices: int, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.rand(batch, slices, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    return image, torch.arange(slices)[None] < torch.tensor(lengths)[:, None]


def test_torchscript_matches_eager_on_other_slice_counts(checkpoint, eager, tmp_path):
    path = export_model(BUNDLE, checkpoint, "torchscript", tmp_path / "model.ts", overrides=TINY)
    extra = {"metadata.json": "", "inference.json": ""}
    loaded = torch.jit.load(str(path), _extra_files=extra)
    for batch, slices, lengths in [(1, 5, [5]), (3, 14, [14, 9, 1])]:
        image, mask = _scans(batch, slices, lengths)
        with torch.inference_mode():
            diff = (loaded(image, mask) - eager(image, mask))[mask].abs().max()
        assert diff <= ATOL
    assert json.loads(extra["metadata.json"])["version"] == VERSION
    inference = json.loads(extra["inference.json"])
    assert inference["network_def"]["_target_"] == "ichbundles.networks.CNNLSTM"
    assert "preprocessing" in inference


def test_image_only_torchscript_for_monai_deploy(checkpoint, eager, tmp_path):
    path = export_model(
        BUNDLE, checkpoint, "torchscript", tmp_path / "image_only.ts", overrides=TINY,
        mask_input=False,
    )  # fmt: skip
    image, _ = _scans(1, 7, [7])
    with torch.inference_mode():
        np.testing.assert_allclose(torch.jit.load(str(path))(image), eager(image), atol=ATOL)


def test_onnx_matches_eager_in_onnxruntime(checkpoint, eager, tmp_path):
    # onnxruntime comes with the test extra (through `export`): missing, the test must fail
    import onnxruntime

    path = export_model(BUNDLE, checkpoint, "onnx", tmp_path / "model.onnx", overrides=TINY)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "mask"]
    image, mask = _scans(2, 13, [13, 6])
    (got,) = session.run(None, {"image": image.numpy(), "mask": mask.numpy()})
    with torch.inference_mode():
        expected = eager(image, mask).numpy()
    np.testing.assert_allclose(got[mask.numpy()], expected[mask.numpy()], atol=ATOL)
    assert check_export(eager, path, "onnx", 64, slices=4) <= 0


def test_monai_ckpt_export_traces_the_image_only_model(checkpoint, eager, tmp_path):
    from monai.bundle import ckpt_export

    root = load_bundle_config(BUNDLE)["bundle_root"]
    path = tmp_path / "monai.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(path),
        ckpt_file=str(checkpoint),
        key_in_ckpt="model",
        config_file=f"{root}/configs/inference.yaml",
        meta_file=f"{root}/configs/metadata.json",
        use_trace=True,
        input_shape=[1, 8, 3, 64, 64],
        **{k: v for k, v in TINY.items() if k != "image_size"},
    )
    extra = {"metadata.json": "", "inference.json": ""}
    loaded = torch.jit.load(str(path), _extra_files=extra)
    image, _ = _scans(1, 11, [11])
    with torch.inference_mode():
        np.testing.assert_allclose(loaded(image), eager(image), atol=ATOL)
    assert json.loads(extra["inference.json"])["network_def"]["_target_"].endswith("CNNLSTM")


def test_unknown_format_is_rejected(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="Unknown export format"):
        export_model(BUNDLE, checkpoint, "tflite", tmp_path / "m", overrides=TINY)


@pytest.mark.parametrize(
    ("expected", "difference", "within"),
    [
        (0.1, 5e-5, True),
        (0.1, 4e-4, False),
        (13.7, 4e-4, True),  # a confident logit: float32 rounding of another runtime
        (13.7, 3e-3, False),
        (-13.7, -4e-4, True),
    ],
)
def test_export_tolerance_grows_with_the_logit(expected, difference, within):
    eager_logits = np.full((2, 6), expected, dtype=np.float32)
    assert (export_error(eager_logits + difference, eager_logits) <= 0) is within


@pytest.mark.parametrize(("difference", "within"), [(4e-4, True), (2e-3, False)])
def test_export_tolerance_follows_the_largest_logit(difference, within):
    # rounding in a network with logits of 12 moves its small logits too
    eager_logits = np.array([[0.1, -12.0], [0.3, 5.0]], dtype=np.float32)
    exported = eager_logits + np.array([[difference, 0.0], [0.0, 0.0]], dtype=np.float32)
    assert (export_error(exported, eager_logits) <= 0) is within


def test_a_rejected_export_never_takes_the_output_path(checkpoint, tmp_path, monkeypatch):
    def mismatch(network, path, fmt, *args):
        raise ExportMismatchError(f"{path}: {fmt} logits differ")

    monkeypatch.setattr(export, "check_export", mismatch)
    out = tmp_path / "model.ts"
    with pytest.raises(ExportMismatchError, match=r"model\.ts\.unchecked"):
        export_model(BUNDLE, checkpoint, "torchscript", out, overrides=TINY)
    assert not out.exists()
    assert (tmp_path / "model.ts.unchecked").stat().st_size > 0

    argv = ["export", BUNDLE, "--checkpoint", str(checkpoint), "--format", "torchscript"]
    argv += ["--out", str(out), *(f"{k}={v}" for k, v in TINY.items())]
    assert cli.main(argv) == 1
    assert not out.exists()


def test_a_checked_export_leaves_no_staging_file(checkpoint, tmp_path):
    out = export_model(BUNDLE, checkpoint, "torchscript", tmp_path / "model.ts", overrides=TINY)
    assert [p.name for p in tmp_path.iterdir()] == ["model.ts"] and out.stat().st_size > 0


def test_onnx_export_without_the_extra_names_it(checkpoint, tmp_path, monkeypatch, capsys):
    real_find_spec = export.importlib.util.find_spec
    monkeypatch.setattr(
        export.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a),
    )
    out = tmp_path / "model.onnx"
    hint = r"needs onnxruntime: pip install 'ich-bundles\[export\]'"
    with pytest.raises(ImportError, match=hint):
        export_model(BUNDLE, checkpoint, "onnx", out, overrides=TINY)
    argv = ["export", BUNDLE, "--checkpoint", str(checkpoint), "--format", "onnx"]
    argv += ["--out", str(out), *(f"{k}={v}" for k, v in TINY.items())]
    assert cli.main(argv) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: ONNX export needs onnxruntime: pip install 'ich-bundles[export]'"
    ]
    assert list(tmp_path.iterdir()) == []
