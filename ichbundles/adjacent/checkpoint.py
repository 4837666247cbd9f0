"""Join the separately trained stage 1 and stage 2 weights into one inference checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ichbundles.bundle.predict import load_weights, read_state_dict
from ichbundles.networks import AdjacentSliceNet

__all__ = ["join_stage_checkpoints"]


def join_stage_checkpoints(
    stage1: str | os.PathLike,
    fusion: str | os.PathLike,
    out: str | os.PathLike,
    network: AdjacentSliceNet,
) -> Path:
    """Write the weights of both stages as one :class:`AdjacentSliceNet` state dict.

    The stage 1 weights take the ``stage1.`` prefix and the fusion weights ``fusion.``; the
    result is loaded into ``network`` (strictly) before it is saved, so a checkpoint that does
    not fit the configured network is never written. The file is written beside and renamed.

    Args:
        stage1: best checkpoint of the main stage 1 model.
        fusion: best checkpoint of the fusion model.
        out: the joined checkpoint (``models/model.pt``).
        network: the end-to-end network as configured for inference.

    Returns:
        ``out``.

    Raises:
        FileNotFoundError: a stage checkpoint is missing.
        RuntimeError: the weights do not fit ``network``.
    """
    joined = {f"stage1.{k}": v for k, v in read_state_dict(stage1).items()}
    joined.update({f"fusion.{k}": v for k, v in read_state_dict(fusion).items()})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    torch.save(joined, tmp)
    try:
        load_weights(network, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
