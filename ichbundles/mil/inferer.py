"""Inference of both phases of paper 000: Att-CNN slice features, then VGPMIL per class."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.inferers import Inferer
from torch import nn

from ichbundles.constants import ICH_CLASSES
from ichbundles.mil.features import MILFeatureInferer
from ichbundles.mil.workflow import load_vgpmil

__all__ = ["VGPMILInferer"]


class VGPMILInferer(Inferer):
    """Per-slice logits of Att-CNN + VGPMIL, with the attention weights behind them.

    Runs ``network.extract`` (:class:`~ichbundles.mil.MILFeatureInferer`) and feeds each
    slice's features, raw or attention-weighted as the VGPMIL was fitted, to the VGPMIL of
    every class. The output logits are VGPMIL's posterior latent means
    (:meth:`~ichbundles.mil.VGPMIL.decision_function`): their sigmoid is the instance
    probability, and their maximum over a scan the bag probability of VGPMIL's max rule, so the
    standard postprocessing (sigmoid) and report (scan = maximum over slices) apply unchanged.

    Returns ``{"pred": (B, S, K) logits, "attention": (B, S) pooling weights}``.

    Args:
        vgpmil_dir: folder with ``vgpmil.json`` (:func:`~ichbundles.mil.fit_vgpmil_from_features`).
        classes: the output classes, in order; each needs a fitted VGPMIL.

    Raises:
        ValueError: a class without a fitted VGPMIL (Phase 1 trained on "any" alone has none
            for the subtypes: train it with ``scan_outputs=6``).
    """

    def __init__(self, vgpmil_dir: str | os.PathLike, classes: Sequence[str] = ICH_CLASSES):
        super().__init__()
        models, settings = load_vgpmil(vgpmil_dir)
        missing = [c for c in classes if c not in models]
        if missing:
            raise ValueError(
                f"{vgpmil_dir}: no VGPMIL for {', '.join(missing)} (fitted: "
                f"{', '.join(models)}); a report needs all of {', '.join(classes)}: train "
                "ich_attention_mil with scan_outputs=6"
            )
        self.models = [models[c] for c in classes]
        self.variant = settings["input"]
        self.features = MILFeatureInferer()

    def __call__(
        self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            inputs: ``(B, S, C, H, W)`` padded scans.
            network: the Att-CNN (``AttentionMIL``), possibly wrapped for data parallelism.
            args: further positional arguments of ``extract``.
            kwargs: further keyword arguments of ``extract`` (the ``mask``).
        """
        out = self.features(inputs, network, *args, **kwargs)
        features, weights = out["features"].detach(), out["weights"].detach()
        if self.variant == "weighted":
            features = features * weights[..., None]
        rows = features.reshape(-1, features.shape[-1]).double().cpu().numpy()
        latents = np.stack([model.decision_function(rows) for model in self.models], axis=-1)
        logits = torch.from_numpy(latents).reshape(*features.shape[:2], len(self.models))
        return {"pred": logits.to(features.device, torch.float32), "attention": weights}
