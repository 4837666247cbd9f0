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

import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import save_net_with_metadata

from ichbundles.bundle.predict import INFERENCE_CONFIG, load_bundle_config, load_weights

__all__ = ["ExportMismatchError", "check_export", "export_model"]

ExportFormat = Literal["torchscript", "onnx"]
_SUFFIX = {"torchscript": ".ts", "onnx": ".onnx"}
#: Largest absolute difference allowed between the exported and the eager logits.
ATOL = 1e-4


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


def _compare(got: np.ndarray, expected: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> float:
    valid = inputs[1].numpy() if len(inputs) > 1 else np.ones(got.shape[:2], dtype=bool)
    return float(np.abs(got - expected.numpy())[valid].max())


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
        The largest absolute difference of the logits at valid slices.

    Raises:
        ExportMismatchError: a difference above ``ATOL`` (1e-4).
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
    diff = _compare(got, expected, inputs)
    if not diff <= ATOL:
        raise ExportMismatchError(
            f"{path}: {fmt} logits differ from eager by {diff:.3g} (> {ATOL}) on {slices} slices"
        )
    return diff


def export_model(
    bundle: str | os.PathLike,
    checkpoint: str | os.PathLike,
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
        checkpoint: ``model.pt`` (a ``state_dict`` or ``{"model": state_dict}``).
        fmt: ``"torchscript"`` or ``"onnx"``.
        out: output file; ``<bundle>/models/model.ts`` or ``model.onnx`` by default.
        size: image rows and columns of the example input; the config's ``image_size`` by
            default (the traced model accepts other slice and batch counts, not other sizes
            for ONNX).
        mask_input: export ``forward(image, mask)``; ``False`` gives ``forward(image)``.
        overrides: config overrides, e.g. ``{"network_def#backbone": "resnet50"}``.

    Returns:
        The path written.

    Raises:
        ValueError: unknown format.
        ExportMismatchError: the exported model's outputs differ from eager (the file is kept
            for inspection).
    """
    if fmt not in _SUFFIX:
        raise ValueError(f"Unknown export format {fmt!r}; expected one of {sorted(_SUFFIX)}.")
    parser = load_bundle_config(bundle, overrides=overrides)
    root = Path(parser["bundle_root"])
    out = Path(out) if out is not None else root / "models" / f"model{_SUFFIX[fmt]}"
    out.parent.mkdir(parents=True, exist_ok=True)
    size = int(size or parser.get_parsed_content("image_size"))
    network = load_weights(parser.get_parsed_content("network_def"), checkpoint).eval()
    example = _example(1, 8, size, mask_input, seed=0)
    names = ["image", "mask"][: len(example)]

    if fmt == "torchscript":
        with torch.inference_mode():
            traced = torch.jit.trace(network, example, check_trace=False)
        config = ConfigParser.load_config_file(root / "configs" / INFERENCE_CONFIG)
        save_net_with_metadata(
            traced,
            str(out),
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
                str(out),
                input_names=names,
                output_names=["logits"],
                dynamic_axes=dynamic,
                opset_version=17,
                dynamo=False,
            )
    check_export(network, out, fmt, size, mask_input)
    return out
