"""Inference of both phases of paper 000: Att-CNN slice features, then VGPMIL per class."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.inferers import Inferer
from torch import nn

from ichbundles.constants import ICH_CLASSES
from ichbundles.mil.features import MILFeatureInferer
from ichbundles.mil.workflow import SETTINGS_FILE, load_vgpmil

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
        model_settings: the settings of the network the features come from (config id to
            value, the bundle config's ``model_settings``); checked against those recorded in
            ``vgpmil.json`` (``metadata.model_settings``) when both are known.

    Raises:
        ValueError: a class without a fitted VGPMIL (Phase 1 trained on "any" alone has none
            for the subtypes: train it with ``scan_outputs=6``), or VGPMILs fitted on the
            features of a network with other settings.
    """

    def __init__(
        self,
        vgpmil_dir: str | os.PathLike,
        classes: Sequence[str] = ICH_CLASSES,
        model_settings: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        models, settings = load_vgpmil(vgpmil_dir)
        missing = [c for c in classes if c not in models]
        if missing:
            raise ValueError(
                f"{vgpmil_dir}: no VGPMIL for {', '.join(missing)} (fitted: "
                f"{', '.join(models)}); a report needs all of {', '.join(classes)}: train "
                "ich_attention_mil with scan_outputs=6"
            )
        fitted = settings.get("metadata", {}).get("model_settings") or {}
        given = dict(model_settings or {})
        # JSON gives lists where a config may hold tuples: compare through lists
        differ = [k for k in fitted if k in given and _as_json(fitted[k]) != _as_json(given[k])]
        if differ:
            raise ValueError(
                f"{Path(vgpmil_dir) / SETTINGS_FILE} was fitted on the features of a network with "
                f"{', '.join(f'{k}={fitted[k]}' for k in differ)}; the model has "
                f"{', '.join(f'{k}={given[k]}' for k in differ)}"
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


def _as_json(value: Any) -> Any:
    return [_as_json(v) for v in value] if isinstance(value, list | tuple) else value
