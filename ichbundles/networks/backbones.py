"""Registry of 2D slice encoders built from MONAI networks.

Every encoder maps ``(N, C, H, W)`` slices to pooled ``(N, F)`` features, with its classification
layer removed, so the sequence and attention heads of the bundles can sit on any of them.
torchvision and timm are not installable beside the project's torch build (see ARCHITECTURE.md),
hence MONAI's ResNet, SEResNeXt and DenseNet.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import partial

import torch
from monai.networks.nets import DenseNet121, ResNet, SEResNext50
from torch import nn

__all__ = ["BACKBONES", "build_backbone", "load_backbone_weights"]

# Prefixes that wrappers add to every key: DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _resnet(
    in_channels: int,
    block: str,
    layers: tuple[int, int, int, int],
    block_inplanes: tuple[int, int, int, int],
) -> tuple[nn.Module, int]:
    # MONAI defaults to a stride-1 stem: 4x the work of the usual ResNet stem at the same size.
    net = ResNet(
        block=block,
        layers=list(layers),
        block_inplanes=list(block_inplanes),
        spatial_dims=2,
        n_input_channels=in_channels,
        conv1_t_stride=2,
        feed_forward=False,
    )
    expansion = 4 if block == "bottleneck" else 1
    return net, block_inplanes[-1] * expansion


def _seresnext50(in_channels: int) -> tuple[nn.Module, int]:
    net = SEResNext50(spatial_dims=2, in_channels=in_channels, num_classes=1)
    # SENet.forward pools, flattens and applies last_linear: an identity leaves the features.
    net.last_linear = nn.Identity()
    return net, 2048


def _densenet121(in_channels: int) -> tuple[nn.Module, int]:
    net = DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=1)
    net.class_layers.out = nn.Identity()
    return net, 1024


_STANDARD_INPLANES = (64, 128, 256, 512)

_FACTORIES: dict[str, Callable[[int], tuple[nn.Module, int]]] = {
    # Small encoders that train in minutes on 2 CPU cores.
    "resnet10_tiny": partial(
        _resnet, block="basic", layers=(1, 1, 1, 1), block_inplanes=(16, 32, 64, 128)
    ),
    "resnet18_small": partial(
        _resnet, block="basic", layers=(2, 2, 2, 2), block_inplanes=(32, 64, 128, 256)
    ),
    "resnet10": partial(
        _resnet, block="basic", layers=(1, 1, 1, 1), block_inplanes=_STANDARD_INPLANES
    ),
    "resnet18": partial(
        _resnet, block="basic", layers=(2, 2, 2, 2), block_inplanes=_STANDARD_INPLANES
    ),
    "resnet34": partial(
        _resnet, block="basic", layers=(3, 4, 6, 3), block_inplanes=_STANDARD_INPLANES
    ),
    "resnet50": partial(
        _resnet, block="bottleneck", layers=(3, 4, 6, 3), block_inplanes=_STANDARD_INPLANES
    ),
    "seresnext50": _seresnext50,
    "densenet121": _densenet121,
}

# Head parameters that a full classification checkpoint carries and the encoders have dropped.
_HEAD_PREFIXES = ("fc.", "last_linear.", "class_layers.out.")

BACKBONES: tuple[str, ...] = tuple(_FACTORIES)
"""Names accepted by :func:`build_backbone`."""


def build_backbone(
    name: str, in_channels: int = 3, pretrained: str | os.PathLike | None = None
) -> tuple[nn.Module, int]:
    """Build a 2D slice encoder by name.

    Args:
        name: one of :data:`BACKBONES`. ``resnet50`` and ``seresnext50`` are the paper-size
            encoders (2048 features); ``resnet10_tiny`` (128) and ``resnet18_small`` (256) are
            sized for CPU training.
        in_channels: channels of each slice, e.g. 3 stacked CT windows.
        pretrained: path of a local state-dict file to load into the encoder (see
            :func:`load_backbone_weights`); ``None`` keeps the random initialisation.
            Nothing is ever downloaded.

    Returns:
        The encoder, mapping ``(N, in_channels, H, W)`` to ``(N, F)``, and ``F``.

    Raises:
        ValueError: when ``name`` is not a registered backbone.
    """
    if name not in _FACTORIES:
        raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    net, features = _FACTORIES[name](in_channels)
    if pretrained is not None:
        load_backbone_weights(net, pretrained)
    return net, features


def _clean_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    cleaned = {}
    for key, value in state.items():
        stripped = True
        while stripped:
            stripped = False
            for prefix in _WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix) :], True
        if not key.startswith(_HEAD_PREFIXES):
            cleaned[key] = value
    return cleaned


def load_backbone_weights(net: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a local state-dict file into an encoder, with strict key matching.

    The file holds a state dict, or a dict with it under ``"state_dict"``. ``module.`` (DDP) and
    ``_orig_mod.`` (``torch.compile``) prefixes are stripped, and the classification layer of a
    full MONAI checkpoint (``fc``, ``last_linear``, ``class_layers.out``), which the encoders do
    not have, is ignored; every other key must match.

    Args:
        net: encoder from :func:`build_backbone`.
        path: state-dict file, as written by ``torch.save(model.state_dict(), path)``.

    Returns:
        ``net``, with the weights loaded.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the file is not a state dict or its keys or shapes do not match.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} does not hold a state dict (found {type(state).__name__})")
    try:
        net.load_state_dict(_clean_state_dict(state), strict=True)
    except RuntimeError as e:
        raise ValueError(f"weights in {path} do not match the backbone: {e}") from e
    return net
