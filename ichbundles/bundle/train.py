"""``ichbundles train``: run a bundle's training stages with MONAI's bundle runner.

A bundle trains with its ``configs/train.yaml`` unless its ``configs/metadata.json`` lists
``"training_stages"``: config file lists, each run in order as ``python -m monai.bundle run``
would run the merged files. ``ich_attention_mil`` has two, the Att-CNN and then the VGPMIL fitted
on its features::

    "training_stages": [["train.yaml"], ["train.yaml", "vgpmil.yaml"]]
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from monai.bundle import ConfigParser
from monai.bundle import run as run_bundle

from ichbundles.bundle.paths import bundle_config, bundle_path

__all__ = ["DEFAULT_STAGES", "parse_overrides", "train_bundle", "training_stages"]

logger = logging.getLogger(__name__)

#: Training stages of a bundle whose metadata names none: ``train.yaml`` alone.
DEFAULT_STAGES: tuple[tuple[str, ...], ...] = (("train.yaml",),)


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


def training_stages(bundle: str | os.PathLike) -> list[list[Path]]:
    """The config files of each training stage of a bundle, in running order.

    Read from ``"training_stages"`` in ``configs/metadata.json`` (file names relative to
    ``configs/``), else :data:`DEFAULT_STAGES`.

    Args:
        bundle: a bundle name under ``bundles/`` or a bundle folder.

    Raises:
        BundleNotFoundError: unknown bundle, or a stage naming a config the bundle lacks.
        ValueError: ``training_stages`` is not a non-empty list of non-empty lists of names.
    """
    root = bundle_path(bundle)
    metadata = json.loads((root / "configs" / "metadata.json").read_text())
    stages = metadata.get("training_stages", DEFAULT_STAGES)
    well_formed = isinstance(stages, list | tuple) and bool(stages)
    well_formed = well_formed and all(
        isinstance(stage, list | tuple) and stage and all(isinstance(n, str) for n in stage)
        for stage in stages
    )
    if not well_formed:
        raise ValueError(
            f"{root / 'configs' / 'metadata.json'}: training_stages must be a list of config "
            f'file lists, e.g. [["train.yaml"]], got {stages!r}'
        )
    return [[bundle_config(root, name) for name in stage] for stage in stages]


def _settable(parser: ConfigParser, key: str) -> bool:
    """Whether ``parser.update({key: ...})`` can set ``key``: top-level, or its parent exists."""
    return "#" not in key or key.rsplit("#", 1)[0] in parser


def train_bundle(
    bundle: str | os.PathLike,
    data: str | os.PathLike,
    output: str | os.PathLike,
    epochs: int | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
) -> Path:
    """Train a bundle on a data folder, as ``python -m monai.bundle run`` would, in process.

    Runs each of the bundle's :func:`training_stages` in order, all with the same settings and
    overrides (a nested override such as ``vgpmil_params#max_iter=50`` only in the stages whose
    configs hold its parent); only the first stage resumes. Each stage's merged configuration is
    saved to ``output/<name of its last config file>_config.json`` (``train_config.json`` for
    ``train.yaml``) and logged to MLflow as the config artifact of its run.

    Args:
        bundle: a bundle name under ``bundles/`` or a bundle folder.
        data: the ``dataset_dir`` of the bundle config.
        output: the ``output_dir``: checkpoints, cache and ``mlruns.db``.
        epochs: training epochs, or ``None`` for the config's.
        overrides: ``key=value`` config overrides (see :func:`parse_overrides`).
        resume: continue the first stage from ``output/models/checkpoint_last.pt``.

    Returns:
        The best checkpoint, ``output/models/model.pt``.

    Raises:
        BundleNotFoundError: unknown bundle, or a stage config it lacks.
        NotADirectoryError: ``data`` is not a folder.
        ValueError: a malformed override, a nested override no stage config can take, or a
            malformed ``training_stages``.
        FileNotFoundError: training ended without a best checkpoint.
    """
    root = bundle_path(bundle)
    stages = training_stages(root)
    if not Path(data).is_dir():
        raise NotADirectoryError(f"not a data folder: {data}")
    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "bundle_root": str(root),
        "dataset_dir": str(Path(data).resolve()),
        "output_dir": str(output),
        "resume": resume,
    }
    if epochs is not None:
        settings["epochs"] = epochs
    settings.update(parse_overrides(overrides))

    parsers = []
    for config_files in stages:
        parser = ConfigParser()
        parser.read_config([str(f) for f in config_files])
        parsers.append(parser)
    # a nested override (``vgpmil_params#max_iter``) goes to the stages that have its parent;
    # checked before any stage runs, so a typo fails at once rather than after training
    unused = [key for key in settings if not any(_settable(p, key) for p in parsers)]
    if unused:
        raise ValueError(f"override(s) {unused} match no config id of bundle {root.name}")

    logging_file = root / "configs" / "logging.conf"
    for index, (config_files, parser) in enumerate(zip(stages, parsers, strict=True)):
        stage = {key: value for key, value in settings.items() if _settable(parser, key)}
        stage["save_execute_config"] = str(output / f"{config_files[-1].stem}_config.json")
        if index > 0:
            stage["resume"] = False  # a later stage starts from what the earlier ones wrote
        logger.info(
            "training stage %d/%d: %s", index + 1, len(stages), [f.name for f in config_files]
        )
        parser.update(stage)
        parser.export_config_file(parser.get(), stage["save_execute_config"])
        run_bundle(
            config_file=[str(f) for f in config_files],
            logging_file=str(logging_file) if logging_file.is_file() else None,
            **stage,
        )
    best = output / "models" / "model.pt"
    if not best.is_file():
        raise FileNotFoundError(f"training ended without a best checkpoint: {best}")
    return best
