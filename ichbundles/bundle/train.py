"""``ichbundles train``: run a bundle's ``train.yaml`` with MONAI's bundle runner."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from monai.bundle import ConfigParser
from monai.bundle import run as run_bundle

from ichbundles.bundle.paths import bundle_config, bundle_path

__all__ = ["parse_overrides", "train_bundle"]


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``key=value`` strings as config overrides, values read as YAML scalars.

    ``train#dataloader#batch_size=4`` gives ``{"train#dataloader#batch_size": 4}``;
    ``resume=true`` gives ``True``; ``$@epochs * 2`` stays an expression string.

    Raises:
        ValueError: an item without ``=`` or with an empty key.
    """
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not key=value (e.g. batch_size=4)")
        parsed[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return parsed


def train_bundle(
    bundle: str | os.PathLike,
    data: str | os.PathLike,
    output: str | os.PathLike,
    epochs: int | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
) -> Path:
    """Train a bundle on a data folder, as ``python -m monai.bundle run`` would, in process.

    The merged configuration (``configs/train.yaml`` with the overrides) is saved to
    ``output/train_config.json`` and logged to MLflow as the run's config artifact.

    Args:
        bundle: a bundle name under ``bundles/`` or a bundle folder.
        data: the ``dataset_dir`` of the bundle config.
        output: the ``output_dir``: checkpoints, cache and ``mlruns.db``.
        epochs: training epochs, or ``None`` for the config's.
        overrides: ``key=value`` config overrides (see :func:`parse_overrides`).
        resume: continue from ``output/models/checkpoint_last.pt``.

    Returns:
        The best checkpoint, ``output/models/model.pt``.

    Raises:
        BundleNotFoundError: unknown bundle.
        NotADirectoryError: ``data`` is not a folder.
        ValueError: a malformed override.
        FileNotFoundError: training ended without a best checkpoint.
    """
    root = bundle_path(bundle)
    config_file = bundle_config(root, "train.yaml")
    if not Path(data).is_dir():
        raise NotADirectoryError(f"not a data folder: {data}")
    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "bundle_root": str(root),
        "dataset_dir": str(Path(data).resolve()),
        "output_dir": str(output),
        "resume": resume,
        "save_execute_config": str(output / "train_config.json"),
    }
    if epochs is not None:
        settings["epochs"] = epochs
    settings.update(parse_overrides(overrides))

    parser = ConfigParser()
    parser.read_config(config_file)
    parser.update(settings)
    parser.export_config_file(parser.get(), settings["save_execute_config"])

    logging_file = root / "configs" / "logging.conf"
    run_bundle(
        config_file=str(config_file),
        logging_file=str(logging_file) if logging_file.is_file() else None,
        **settings,
    )
    best = output / "models" / "model.pt"
    if not best.is_file():
        raise FileNotFoundError(f"training ended without a best checkpoint: {best}")
    return best
