"""Phase 2 of paper 000: VGPMIL fitted on the per-slice features of a trained Att-CNN.

:func:`fit_vgpmil_from_features` fits one :class:`~ichbundles.mil.VGPMIL` per scan output on
the rows of :class:`~ichbundles.mil.MILFeatures`, with bag (scan) labels only, and saves them
in one folder:

* ``vgpmil.npz`` when there is one output (``any``, as in the paper), else one
  ``vgpmil_<class>.npz`` per output (``vgpmil_epidural.npz``, ..., ``vgpmil_any.npz``);
* ``vgpmil.json``: the settings (input variant, pooling, classes and their files, numbers of
  bags and instances, fit seconds, VGPMIL parameters). :func:`load_vgpmil` reads both back.

The input variant is the paper's experiment axis: ``raw`` slice features (AL-nAw with attention
pooling, nAL with mean pooling) or ``weighted`` ones, multiplied by the slice's attention
weight (AL-Aw).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ichbundles.constants import ICH_CLASSES
from ichbundles.mil.features import MILFeatures
from ichbundles.mil.vgpmil import VGPMIL

__all__ = [
    "SETTINGS_FILE",
    "VGPMIL_INPUTS",
    "VGPMILFit",
    "fit_vgpmil_from_features",
    "load_vgpmil",
    "paper_experiment",
    "vgpmil_filename",
    "vgpmil_inputs",
]

#: Input variants: slice features as they are, or multiplied by their attention weight.
VGPMIL_INPUTS = ("raw", "weighted")
#: Settings file written beside the models.
SETTINGS_FILE = "vgpmil.json"
_FORMAT = "ichbundles.mil.workflow/1"

logger = logging.getLogger(__name__)


def vgpmil_inputs(features: MILFeatures, variant: str = "raw") -> np.ndarray:
    """The ``(N, M)`` VGPMIL input of each slice.

    Args:
        features: collected slice rows.
        variant: ``"raw"`` (the features) or ``"weighted"`` (features times attention weight).

    Raises:
        ValueError: unknown variant.
    """
    if variant == "raw":
        return features.features
    if variant == "weighted":
        return features.features * features.weights[:, None]
    raise ValueError(f"vgpmil input must be one of {VGPMIL_INPUTS}, got {variant!r}")


def paper_experiment(pooling: str | None, variant: str) -> str | None:
    """Paper 000's name of a setting (AL-nAw, AL-Aw, nAL), or ``None`` for one it lacks."""
    names = {("attention", "raw"): "AL-nAw", ("attention", "weighted"): "AL-Aw"}
    names[("mean", "raw")] = "nAL"
    return names.get((pooling, variant))


def vgpmil_filename(class_name: str, classes: Sequence[str]) -> str:
    """``vgpmil.npz`` for a single output, ``vgpmil_<class>.npz`` for one of several."""
    return "vgpmil.npz" if len(classes) == 1 else f"vgpmil_{class_name}.npz"


@dataclass(frozen=True)
class VGPMILFit:
    """What :func:`fit_vgpmil_from_features` fitted and wrote.

    Attributes:
        models: fitted model per class name.
        paths: the model files, then the settings file.
        settings: the content of the settings file.
    """

    models: dict[str, VGPMIL]
    paths: list[Path]
    settings: dict[str, Any] = field(default_factory=dict)

    def params(self) -> dict[str, str]:
        """Flat parameters for experiment tracking."""
        s = self.settings
        flat = {k: s[k] for k in ("input", "pooling", "experiment", "n_bags", "n_instances")}
        flat["classes"] = ",".join(s["classes"])
        flat.update({f"vgpmil_{k}": v for k, v in s["vgpmil"].items()})
        return {k: str(v) for k, v in flat.items()}

    def metrics(self) -> dict[str, float]:
        """Fit time and final evidence lower bound per class, for experiment tracking."""
        out = {f"fit_seconds_{c}": t for c, t in self.settings["fit_seconds"].items()}
        out.update({f"elbo_{c}": float(m.history_[-1]) for c, m in self.models.items()})
        return out


def _write_json(content: Mapping[str, Any], path: Path) -> None:
    # written beside and renamed, like VGPMIL.save: a reader never sees half a file
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(content, fh, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fit_vgpmil_from_features(
    features: MILFeatures,
    output_dir: str | os.PathLike,
    classes: Sequence[str] = ("any",),
    variant: str = "raw",
    params: Mapping[str, Any] | None = None,
    pooling: str | None = None,
    label_names: Sequence[str] = ICH_CLASSES,
    metadata: Mapping[str, Any] | None = None,
) -> VGPMILFit:
    """Fit one VGPMIL per class on slice features with scan labels, and save them.

    Args:
        features: slice rows with ``scan_labels`` (see :class:`MILFeatureCollector`).
        output_dir: folder of the model files and ``vgpmil.json`` (created).
        classes: the classes to fit, each a column of the scan labels named in ``label_names``.
        variant: VGPMIL input, ``"raw"`` or ``"weighted"`` (see :func:`vgpmil_inputs`).
        params: keyword arguments of :class:`VGPMIL` (the paper: 200 inducing points, length
            scale 1.5, variance 0.5, H 100, 200 rounds; those are also VGPMIL's defaults).
        pooling: the Phase 1 network's pooling, recorded with the paper's experiment name.
        label_names: names of the scan label columns, ``ICH_CLASSES`` for RSNA-style data.
        metadata: further JSON-serialisable entries for ``vgpmil.json`` (e.g. the checkpoint).

    Returns:
        The fitted models, the written files and the settings.

    Raises:
        ValueError: no scan labels, an unknown class or input variant, or labels VGPMIL rejects.
    """
    if features.scan_labels is None:
        raise ValueError("VGPMIL needs scan labels: the collected batches had none")
    if len(label_names) != features.scan_labels.shape[1]:
        raise ValueError(
            f"{features.scan_labels.shape[1]} scan label columns but {len(label_names)} names"
        )
    unknown = [c for c in classes if c not in label_names]
    if unknown or not classes:
        raise ValueError(f"classes must be a non-empty subset of {list(label_names)}: {unknown}")
    x = vgpmil_inputs(features, variant)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    models: dict[str, VGPMIL] = {}
    paths: list[Path] = []
    seconds: dict[str, float] = {}
    positives: dict[str, int] = {}
    for name in classes:
        labels = features.scan_labels[:, list(label_names).index(name)]
        start = time.perf_counter()
        models[name] = VGPMIL(**dict(params or {})).fit(x, features.bag_ids, labels)
        seconds[name] = round(time.perf_counter() - start, 3)
        positives[name] = len(np.unique(features.bag_ids[labels > 0]))
        paths.append(models[name].save(output_dir / vgpmil_filename(name, classes)))
        logger.info(
            "VGPMIL %s (%s input): %d slices of %d scans (%d positive) in %.1f s -> %s",
            name,
            variant,
            len(features),
            features.n_bags,
            positives[name],
            seconds[name],
            paths[-1],
        )

    settings = {
        "format": _FORMAT,
        "input": variant,
        "pooling": pooling,
        "experiment": paper_experiment(pooling, variant),
        "classes": list(classes),
        "models": {name: path.name for name, path in zip(classes, paths, strict=True)},
        "n_bags": features.n_bags,
        "n_instances": len(features),
        "n_features": int(x.shape[1]),
        "positive_bags": positives,
        "fit_seconds": seconds,
        "vgpmil": {k: v for k, v in models[classes[0]].get_params().items() if k != "n_threads"},
        "metadata": dict(metadata or {}),
    }
    settings_path = output_dir / SETTINGS_FILE
    _write_json(settings, settings_path)
    return VGPMILFit(models=models, paths=[*paths, settings_path], settings=settings)


def load_vgpmil(output_dir: str | os.PathLike) -> tuple[dict[str, VGPMIL], dict[str, Any]]:
    """Read the models and settings that :func:`fit_vgpmil_from_features` saved.

    Args:
        output_dir: the folder holding ``vgpmil.json``.

    Returns:
        The model per class name and the settings.

    Raises:
        ValueError: the settings file is not one this module wrote.
    """
    output_dir = Path(output_dir)
    settings = json.loads((output_dir / SETTINGS_FILE).read_text())
    if settings.get("format") != _FORMAT:
        raise ValueError(f"{output_dir / SETTINGS_FILE} is not a {_FORMAT} file")
    models = {name: VGPMIL.load(output_dir / file) for name, file in settings["models"].items()}
    return models, settings
