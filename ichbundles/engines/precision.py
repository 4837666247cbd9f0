"""Reduced-precision forward passes for MONAI engines on CPU and CUDA.

MONAI's engines take ``amp=True`` only for CUDA (``torch.autocast("cuda")`` with a gradient
scaler). On CPUs with AMX or AVX-512 BF16 a bfloat16 forward pass is where most of the training
speed is (``benchmarks/bench_train.py``), and bfloat16 needs no gradient scaler, so the autocast
lives in an inferer: trainers, evaluators and ``monai.bundle run`` use it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer, SimpleInferer

__all__ = [
    "PRECISIONS",
    "AutocastInferer",
    "bf16_supported",
    "place_network",
    "resolve_precision",
]

#: Values of the bundles' ``precision`` config id.
PRECISIONS = ("auto", "bfloat16", "float32")


def bf16_supported(device: str | torch.device) -> bool:
    """Whether ``device`` runs bfloat16 matmuls and convolutions natively (fast).

    Args:
        device: a CUDA device (native from compute capability 8.0) or the CPU (native with AMX
            tiles or AVX-512 BF16); elsewhere bfloat16 is emulated and slower than float32.
    """
    device = torch.device(device)
    if device.type == "cuda":
        # is_bf16_supported() also counts emulation (V100, T4), which is slower than float32
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        # private but stable helpers; absent in some builds, which then count as unsupported
        checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def resolve_precision(precision: str, device: str | torch.device) -> torch.dtype:
    """The autocast dtype for a config's ``precision`` on ``device``.

    Args:
        precision: ``"auto"`` (bfloat16 where :func:`bf16_supported`, else float32),
            ``"bfloat16"`` or ``"float32"``.
        device: the device the network runs on.

    Raises:
        ValueError: an unknown ``precision``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return torch.bfloat16 if bf16_supported(device) else torch.float32
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


def _to_float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, tuple | list):
        return type(value)(_to_float32(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_float32(v) for k, v in value.items()}
    return value


class AutocastInferer(Inferer):
    """Run another inferer under ``torch.autocast`` and return float32 outputs.

    The loss and the metrics then see float32 as without autocast; the backward pass follows
    the forward's dtypes by itself. With ``float32`` (or ``precision="auto"`` on a device without
    fast bfloat16) this is the inner inferer unchanged.

    Args:
        precision: ``"auto"``, ``"bfloat16"`` or ``"float32"`` (see :func:`resolve_precision`).
        inferer: the inferer to wrap; ``SimpleInferer()`` by default.

    Example::

        inferer = AutocastInferer("auto")
        logits = inferer(images, network, mask=mask)  # float32, computed in bfloat16 on AMX
    """

    def __init__(self, precision: str = "auto", inferer: Inferer | None = None) -> None:
        super().__init__()
        resolve_precision(precision, "cpu")  # fail at construction on an unknown value
        self.precision = precision
        self.inferer = inferer if inferer is not None else SimpleInferer()

    def __call__(
        self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        dtype = resolve_precision(self.precision, inputs.device)
        if dtype == torch.float32:
            return self.inferer(inputs, network, *args, **kwargs)
        with torch.autocast(device_type=inputs.device.type, dtype=dtype):
            outputs = self.inferer(inputs, network, *args, **kwargs)
        return _to_float32(outputs)


def place_network(
    network: torch.nn.Module, device: str | torch.device, channels_last: bool = False
) -> torch.nn.Module:
    """Move ``network`` to ``device``, its 4D weights in channels-last layout if asked.

    Channels-last convolutions ran about 4x faster than contiguous ones on the project's CPUs
    (oneDNN's preferred layout); 2D weights (linear, LSTM) are unaffected.

    Args:
        network: the module to move.
        device: the target device.
        channels_last: lay 4D (convolution) weights out channels-last.

    Returns:
        ``network``, moved.
    """
    if channels_last:
        return network.to(device=device, memory_format=torch.channels_last)
    return network.to(device=device)
