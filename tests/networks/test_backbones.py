"""Tests for the slice-encoder registry."""

from __future__ import annotations

import pytest
import torch

from ichbundles.networks.backbones import BACKBONES, build_backbone, load_backbone_weights

EXPECTED_FEATURES = {
    "resnet10_tiny": 128,
    "resnet18_small": 256,
    "resnet10": 512,
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "seresnext50": 2048,
    "densenet121": 1024,
}


def test_registry_names():
    assert set(BACKBONES) == set(EXPECTED_FEATURES)


@pytest.mark.parametrize("name", BACKBONES)
def test_output_shape(name):
    net, features = build_backbone(name)
    assert features == EXPECTED_FEATURES[name]
    with torch.no_grad():
        out = net.eval()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, features)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["resnet10_tiny", "resnet18_small"])
@pytest.mark.parametrize("in_channels", [1, 5])
def test_in_channels_and_size(name, in_channels):
    net, features = build_backbone(name, in_channels=in_channels)
    with torch.no_grad():
        out = net.eval()(torch.randn(3, in_channels, 48, 80))
    assert out.shape == (3, features)


def test_stem_has_stride_two():
    # MONAI's default stride-1 stem costs 4x; the registry must not fall back to it.
    net, _ = build_backbone("resnet18")
    assert net.conv1.stride == (2, 2)


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'") as info:
        build_backbone("vgg16")
    for name in BACKBONES:
        assert name in str(info.value)


def _outputs_equal(a, b, x):
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda sd: sd, id="plain"),
        pytest.param(lambda sd: {f"module.{k}": v for k, v in sd.items()}, id="ddp"),
        pytest.param(lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()}, id="compiled"),
        pytest.param(lambda sd: {"state_dict": sd}, id="nested"),
        pytest.param(
            lambda sd: {**sd, "fc.weight": torch.zeros(6, 128), "fc.bias": torch.zeros(6)},
            id="with-classifier",
        ),
    ],
)
def test_pretrained_round_trip(tmp_path, wrap):
    torch.manual_seed(0)
    source, _ = build_backbone("resnet10_tiny")
    # Make batch-norm statistics non-default so that buffers are checked too.
    source.train()(torch.randn(4, 3, 32, 32))
    path = tmp_path / "encoder.pt"
    torch.save(wrap(source.state_dict()), path)

    torch.manual_seed(1)
    fresh, _ = build_backbone("resnet10_tiny")
    x = torch.randn(2, 3, 64, 64)
    assert not _outputs_equal(source, fresh, x)
    loaded, _ = build_backbone("resnet10_tiny", pretrained=path)
    assert _outputs_equal(source, loaded, x)


def test_pretrained_dense_and_senet(tmp_path):
    for name in ("seresnext50", "densenet121"):
        source, _ = build_backbone(name, in_channels=1)
        path = tmp_path / f"{name}.pt"
        torch.save(source.state_dict(), path)
        loaded, _ = build_backbone(name, in_channels=1, pretrained=str(path))
        assert _outputs_equal(source, loaded, torch.randn(1, 1, 32, 32))


def test_mismatched_file_names_the_file(tmp_path):
    other, _ = build_backbone("resnet18_small")
    path = tmp_path / "resnet18_small.pt"
    torch.save(other.state_dict(), path)
    with pytest.raises(ValueError, match=r"resnet18_small\.pt do not match") as info:
        build_backbone("resnet10_tiny", pretrained=path)
    assert "size mismatch" in str(info.value) or "Missing key" in str(info.value)


def test_unexpected_keys_are_rejected(tmp_path):
    net, _ = build_backbone("resnet10_tiny")
    path = tmp_path / "extra.pt"
    torch.save({**net.state_dict(), "lstm.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="Unexpected key"):
        load_backbone_weights(net, path)


def test_missing_and_invalid_files(tmp_path):
    net, _ = build_backbone("resnet10_tiny")
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pt"):
        load_backbone_weights(net, tmp_path / "nowhere.pt")
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_backbone_weights(net, path)
