"""Join the separately trained stage 1 and stage 2 weights into one inference checkpoint."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ichbundles.bundle.checkpoint import (
    ModelSettings,
    check_settings,
    load_weights,
    read_checkpoint,
    read_state_dict,
)
from ichbundles.networks import AdjacentSliceNet

__all__ = ["STAGE1_SETTINGS", "join_stage_checkpoints"]

#: The settings of the joined model that stage 1 was trained with too; the fusion settings
#: (``fusion_channels``, ...) are the fusion stage's own.
STAGE1_SETTINGS = ("bundle", "backbone", "image_size", "windows")


def join_stage_checkpoints(
    stage1: str | os.PathLike,
    fusion: str | os.PathLike,
    out: str | os.PathLike,
    network: AdjacentSliceNet,
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """Write the weights of both stages as one :class:`AdjacentSliceNet` checkpoint.

    The stage 1 weights take the ``stage1.`` prefix and the fusion weights ``fusion.``; the
    result is loaded into ``network`` (strictly) before it is saved, so a checkpoint that does
    not fit the configured network is never written. The file is written beside and renamed.

    Args:
        stage1: best checkpoint of the main stage 1 model.
        fusion: best checkpoint of the fusion model.
        out: the joined checkpoint (``models/model.pt``).
        network: the end-to-end network as configured for inference.
        settings: the joined model's settings (the config's ``model_settings``), saved with it
            as ``{"model": weights, "settings": ...}``
            (:mod:`ichbundles.bundle.checkpoint`); ``None`` writes a bare state dict.

    Returns:
        ``out``.

    Raises:
        FileNotFoundError: a stage checkpoint is missing.
        ValueError: stage 1 was trained with other :data:`STAGE1_SETTINGS` than ``settings``.
        RuntimeError: the weights do not fit ``network``.
    """
    stage1_weights, stage1_settings = read_checkpoint(stage1)
    if settings is not None:
        shared = {k: v for k, v in settings.items() if k in STAGE1_SETTINGS}
        check_settings(stage1, shared, trained=stage1_settings)
    joined = {f"stage1.{k}": v for k, v in stage1_weights.items()}
    joined.update({f"fusion.{k}": v for k, v in read_state_dict(fusion).items()})
    load_weights(network, joined)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    content: dict[str, Any] = joined
    if settings is not None:
        content = {"model": joined, "settings": ModelSettings(settings).state_dict()}
    try:
        torch.save(content, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
