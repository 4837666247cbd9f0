"""Export a bundle's trained network to TorchScript (for MONAI Deploy) or ONNX, and check it.

The exported model takes ``image`` ``(B, S, C, H, W)`` float32 and ``mask`` ``(B, S)`` bool
(valid slices first) and returns per-slice logits ``(B, S, 6)``; batch and slice counts are
dynamic. With ``mask_input=False`` it takes the image alone (every slice valid), the single-input
form MONAI Deploy's bundle operator calls. The TorchScript file embeds ``extra/metadata.json``
and ``extra/inference.json`` as MONAI's ``ckpt_export`` does.

MONAI's ``ckpt_export``/``onnx_export`` are not called: they build their example input from one
``input_shape`` (a single tensor), so they cannot trace the ``(image, mask)`` signature, and
their default ``torch.jit.script`` fails on the packed-sequence code of
:class:`ichbundles.networks.sequence.MaskedBiLSTM`. ``ckpt_export`` with
``--use_trace True --input_shape "[1, 8, 3, 256, 256]"`` does work and gives the image-only model.
This module traces with ``torch.jit.trace`` and saves with MONAI's ``save_net_with_metadata``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import save_net_with_metadata

from ichbundles.bundle.predict import INFERENCE_CONFIG, load_bundle_model

__all__ = [
    "ExportMismatchError",
    "check_export",
    "default_export_path",
    "export_error",
    "export_model",
]

ExportFormat = Literal["torchscript", "onnx"]
_SUFFIX = {"torchscript": ".ts", "onnx": ".onnx"}
#: Modules of the ``export`` extra that ONNX export and its check import.
_ONNX_MODULES = ("onnx", "onnxruntime")
#: Difference allowed between the exported and the eager logits: ``ATOL + RTOL * max|eager|``.
#: The relative part follows the largest logit, not each one: float32 rounding in another
#: runtime scales with the values flowing through the network, so a confident model moves its
#: small output logits by as much as its large ones.
ATOL = 1e-4
RTOL = 1e-4


class ExportMismatchError(RuntimeError):
    """The exported model's outputs differ from the eager network's."""


def _example(
    batch: int, slices: int, size: int, mask_input: bool, seed: int
) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, slices, 3, size, size, generator=generator)
    if not mask_input:
        return (image,)
    # Every scan but the first is shorter than S: padding is exercised.
    lengths = torch.tensor([slices] + [max(1, slices - 2 - b) for b in range(1, batch)])
    return image, torch.arange(slices)[None] < lengths[:, None]


def export_error(got: np.ndarray, expected: np.ndarray) -> float:
    """The largest difference beyond ``ATOL + RTOL * max|expected|`` (<= 0: within)."""
    tolerance = ATOL + RTOL * float(np.abs(expected).max())
    return float(np.abs(got - expected).max()) - tolerance


def _compare(got: np.ndarray, expected: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> float:
    valid = inputs[1].numpy() if len(inputs) > 1 else np.ones(got.shape[:2], dtype=bool)
    return export_error(got[valid], expected.numpy()[valid])


def check_export(
    network: torch.nn.Module,
    path: str | os.PathLike,
    fmt: ExportFormat,
    size: int,
    mask_input: bool = True,
    slices: int = 11,
) -> float:
    """Compare an exported model with the eager network on a random input.

    The input has 2 scans of ``slices`` slices (one padded), a different shape from the example
    the export traced, so baked-in shapes are caught. TorchScript runs through ``torch.jit.load``,
    ONNX through onnxruntime.

    Returns:
        The largest difference of the logits at valid slices beyond ``ATOL + RTOL * max|eager|``
        (zero or negative when they match).

    Raises:
        ExportMismatchError: a difference beyond that tolerance.
    """
    inputs = _example(2, slices, size, mask_input, seed=1)
    network = network.eval()
    with torch.inference_mode():
        expected = network(*inputs)
        if fmt == "torchscript":
            got = torch.jit.load(str(path), map_location="cpu")(*inputs).numpy()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})[0]
    excess = _compare(got, expected, inputs)
    if not excess <= 0:
        raise ExportMismatchError(
            f"{path}: {fmt} logits differ from eager by {excess:.3g} beyond the tolerance "
            f"({ATOL} + {RTOL} x the largest |logit|) on {slices} slices"
        )
    return excess


def default_export_path(
    bundle: str | os.PathLike, checkpoint: str | os.PathLike | None, fmt: ExportFormat
) -> Path:
    """Where :func:`export_model` writes by default: beside the checkpoint when one is given,
    else ``<bundle name>.ts`` (or ``.onnx``) in the current folder, never inside the bundle."""
    if checkpoint is not None:
        return Path(checkpoint).with_suffix(_SUFFIX[fmt])
    return Path.cwd() / f"{Path(bundle).name}{_SUFFIX[fmt]}"


def export_model(
    bundle: str | os.PathLike,
    checkpoint: str | os.PathLike | None,
    fmt: ExportFormat,
    out: str | os.PathLike | None = None,
    size: int | None = None,
    *,
    mask_input: bool = True,
    overrides: dict | None = None,
) -> Path:
    """Export a bundle's network with trained weights and check it against eager PyTorch.

    Args:
        bundle: bundle name under ``bundles/`` or bundle folder.
        checkpoint: ``model.pt`` (see :func:`ichbundles.bundle.checkpoint.read_checkpoint`), or
            ``None`` for the model the bundle ships. Its settings set the network.
        fmt: ``"torchscript"`` or ``"onnx"``.
        out: output file; :func:`default_export_path` by default.
        size: image rows and columns of the example input; the config's ``image_size`` (the
            checkpoint's) by default (the traced model accepts other slice and batch counts, not
            other sizes for ONNX).
        mask_input: export ``forward(image, mask)``; ``False`` gives ``forward(image)``.
        overrides: config overrides, e.g. ``{"use_fusion": False}``; one that contradicts the
            checkpoint's settings is an error.

    Returns:
        The path written.

    Raises:
        ValueError: unknown format; an unreadable checkpoint, one of another bundle, overrides
            contradicting its settings or weights that do not fit the network (one line).
        FileNotFoundError: no such checkpoint, or none given and the bundle ships none.
        ImportError: ONNX export without the ``export`` extra (onnx, onnxruntime).
        ExportMismatchError: the exported model's outputs differ from eager. Nothing is
            written to ``out``; the rejected model stays beside it as ``<out>.unchecked`` for
            inspection.
    """
    if fmt not in _SUFFIX:
        raise ValueError(f"Unknown export format {fmt!r}; expected one of {sorted(_SUFFIX)}.")
    if fmt == "onnx":
        missing = [name for name in _ONNX_MODULES if importlib.util.find_spec(name) is None]
        if missing:
            raise ImportError(
                f"ONNX export needs {' and '.join(missing)}: pip install 'ich-bundles[export]'"
            )
    model = load_bundle_model(bundle, checkpoint, overrides)
    parser = model.parser
    out = Path(out) if out is not None else default_export_path(bundle, checkpoint, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    size = int(size or parser.get_parsed_content("image_size"))
    network = model.network()
    # written beside `out` and renamed once checked: `out` never holds an unchecked model
    staging = out.with_name(out.name + ".unchecked")
    example = _example(1, 8, size, mask_input, seed=0)
    names = ["image", "mask"][: len(example)]

    if fmt == "torchscript":
        with torch.inference_mode():
            traced = torch.jit.trace(network, example, check_trace=False)
        # the inference config as this model needs it: its setting ids at the checkpoint's values
        root = Path(parser["bundle_root"])
        config = ConfigParser.load_config_file(root / "configs" / INFERENCE_CONFIG)
        config.update({k: parser[k] for k in model.settings if k in config})
        save_net_with_metadata(
            traced,
            str(staging),
            include_config_vals=True,
            meta_values=parser.get("_meta_", {}),
            more_extra_files={"inference.json": json.dumps(config).encode()},
        )
    else:
        axes = {"batch": 0, "slices": 1}
        dynamic = {n: {i: a for a, i in axes.items()} for n in [*names, "logits"]}
        with torch.no_grad():
            torch.onnx.export(
                network,
                example,
                str(staging),
                input_names=names,
                output_names=["logits"],
                dynamic_axes=dynamic,
                opset_version=17,
                dynamo=False,
            )
    check_export(network, staging, fmt, size, mask_input)
    os.replace(staging, out)
    return out
