"""``ichbundles train``: run a bundle's training stages with MONAI's bundle runner.

A bundle trains with its ``configs/train.yaml`` unless its ``configs/metadata.json`` lists
``"training_stages"``, each run in order as ``python -m monai.bundle run`` would run its merged
config files. A stage is a list of config files, or an object that repeats one over an index::

    "training_stages": [
        ["train.yaml"],
        {"configs": ["train.yaml", "fold.yaml"], "repeat": "fold", "times": "fold_models"},
        ["train.yaml", "fusion.yaml"]
    ]

runs ``train.yaml``, then ``train.yaml + fold.yaml`` with ``fold=0``, ``fold=1``, ... as many
times as the config id ``fold_models`` says (possibly none), then the fusion stage.

Progress is recorded in ``<output>/training_stages.json``: with ``resume``, finished stages are
skipped and the interrupted one continues from its last checkpoint, provided the settings that
decide the data split are unchanged. With tracking on and more than one stage, every stage's
MLflow run is nested under one parent run (its id reaches the configs as ``parent_run_id``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from monai.bundle import ConfigParser
from monai.bundle import run as run_bundle

from ichbundles.bundle.paths import bundle_config, bundle_path
from ichbundles.bundle.report import write_atomic
from ichbundles.bundle.tracking import end_parent_run, reopen_parent_run, start_parent_run
from ichbundles.data.labels import LabelError
from ichbundles.io import SeriesReadError

__all__ = [
    "DEFAULT_STAGES",
    "PROGRESS_FILE",
    "TrainingStage",
    "parse_overrides",
    "train_bundle",
    "training_stages",
]

logger = logging.getLogger(__name__)

#: Training stages of a bundle whose metadata names none: ``train.yaml`` alone.
DEFAULT_STAGES: tuple[tuple[str, ...], ...] = (("train.yaml",),)
#: Finished stages and the parent MLflow run, under the output folder.
PROGRESS_FILE = "training_stages.json"
#: Errors of bad input that MONAI's config parser wraps in ``RuntimeError("Failed to evaluate
#: ...")`` when a config expression raises them; :func:`train_bundle` re-raises them unwrapped.
_INPUT_ERRORS = (OSError, LabelError, SeriesReadError)
#: Config id of the checkpoint a resumed stage continues from.
_RESUME_PATH_ID = "train#checkpoint_loader#load_path"
#: Config ids that decide which scans each stage trains on: a resume must not change them.
_SPLIT_IDS = ("dataset_dir", "datalist", "val_fraction", "folds")


@dataclass(frozen=True)
class TrainingStage:
    """One entry of ``training_stages``.

    Attributes:
        configs: its config files, merged in order.
        repeat: config id set to 0, 1, ... on each repetition, or ``None`` to run once.
        times: config id whose value is the number of repetitions.
    """

    configs: list[Path]
    repeat: str | None = None
    times: str | None = None


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


def training_stages(bundle: str | os.PathLike) -> list[TrainingStage]:
    """The training stages of a bundle, in running order.

    Read from ``"training_stages"`` in ``configs/metadata.json`` (file names relative to
    ``configs/``), else :data:`DEFAULT_STAGES`.

    Args:
        bundle: a bundle name under ``bundles/`` or a bundle folder.

    Raises:
        BundleNotFoundError: unknown bundle, or a stage naming a config the bundle lacks.
        ValueError: ``training_stages`` is not a non-empty list of stages, each a non-empty list
            of names or a ``{"configs", "repeat", "times"}`` object.
    """
    root = bundle_path(bundle)
    metadata_file = root / "configs" / "metadata.json"
    stages = json.loads(metadata_file.read_text()).get("training_stages", DEFAULT_STAGES)

    def names_ok(names: object) -> bool:
        return (
            isinstance(names, list | tuple)
            and bool(names)
            and all(isinstance(n, str) for n in names)
        )

    def stage_ok(stage: object) -> bool:
        if isinstance(stage, Mapping):
            return (
                set(stage) == {"configs", "repeat", "times"}
                and names_ok(stage["configs"])
                and isinstance(stage["repeat"], str)
                and isinstance(stage["times"], str)
            )
        return names_ok(stage)

    if not (isinstance(stages, list | tuple) and stages and all(stage_ok(s) for s in stages)):
        raise ValueError(
            f"{metadata_file}: training_stages must be a list of config file lists or "
            f'{{"configs", "repeat", "times"}} objects, e.g. [["train.yaml"]], got {stages!r}'
        )
    parsed = []
    for stage in stages:
        if isinstance(stage, Mapping):
            configs = [bundle_config(root, name) for name in stage["configs"]]
            parsed.append(TrainingStage(configs, stage["repeat"], stage["times"]))
        else:
            parsed.append(TrainingStage([bundle_config(root, name) for name in stage]))
    return parsed


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
    configs hold its parent). Each run's merged configuration is saved to
    ``output/<label>_config.json`` (``train_config.json`` for ``train.yaml``,
    ``fold_fold0_config.json`` for the first repetition of ``fold.yaml``) and logged to MLflow as
    the config artifact of its run. Finished runs are recorded in ``output/training_stages.json``
    with the settings that decide the data split (``dataset_dir``, ``datalist``,
    ``val_fraction``, ``folds`` and the SHA-256 of the datalist's scan names).

    Args:
        bundle: a bundle name under ``bundles/`` or a bundle folder.
        data: the ``dataset_dir`` of the bundle config.
        output: the ``output_dir``: checkpoints, cache and ``mlruns.db``.
        epochs: training epochs, or ``None`` for the config's.
        overrides: ``key=value`` config overrides (see :func:`parse_overrides`).
        resume: skip the finished runs and continue the first unfinished one from its
            ``train#checkpoint_loader#load_path`` (its ``checkpoint_last.pt``) when it wrote
            one. Without it every run starts afresh and stale last checkpoints are removed.

    Returns:
        The best checkpoint, ``output/models/model.pt``.

    Raises:
        BundleNotFoundError: unknown bundle, or a stage config it lacks.
        NotADirectoryError: ``data`` is not a folder.
        ValueError: a malformed override, a nested override no stage config can take, a
            malformed ``training_stages``, ``resume`` with split settings other than those
            the finished runs had, or an ``init_from`` run trained with other ones.
        FileNotFoundError: training ended without a best checkpoint.
        OSError, LabelError, SeriesReadError: raised while a config expression was evaluated
            (no ``labels.csv``, a missing ``init_from`` checkpoint, a bad series); re-raised
            as they were rather than wrapped in the config parser's ``RuntimeError``, so the
            command line reports them in one line.
    """
    try:
        return _train_runs(bundle, data, output, epochs, overrides, resume)
    except RuntimeError as error:
        cause = _input_error(error)
        if cause is None:
            raise
        raise cause from None


def _input_error(error: BaseException | None) -> BaseException | None:
    """The bad-input error at the root of a config parser's ``RuntimeError``, or ``None``."""
    while error is not None:
        if isinstance(error, _INPUT_ERRORS):
            return error
        error = error.__cause__
    return None


def _train_runs(
    bundle: str | os.PathLike,
    data: str | os.PathLike,
    output: str | os.PathLike,
    epochs: int | None,
    overrides: Sequence[str],
    resume: bool,
) -> Path:
    """:func:`train_bundle` without the unwrapping of bad-input errors."""
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
    }
    if epochs is not None:
        settings["epochs"] = epochs
    settings.update(parse_overrides(overrides))

    parsers = []
    for stage in stages:
        parser = ConfigParser()
        parser.read_config([str(f) for f in stage.configs])
        parsers.append(parser)
    # a nested override (``vgpmil_params#max_iter``) goes to the stages that have its parent;
    # checked before any stage runs, so a typo fails at once rather than after training
    unused = [key for key in settings if not any(_settable(p, key) for p in parsers)]
    if unused:
        raise ValueError(f"override(s) {unused} match no config id of bundle {root.name}")

    runs = _stage_runs(stages, parsers, settings)
    parent = parsers[0]
    parent.update({k: v for k, v in settings.items() if _settable(parent, k)})
    split = {key: parent.get(key) for key in _SPLIT_IDS if key in parent}
    if "datalist" in parent:  # the same folder with other scans is another split
        names = sorted(str(item.get("name")) for item in parent.get_parsed_content("datalist"))
        split["scans_sha256"] = hashlib.sha256("\n".join(names).encode()).hexdigest()
    progress_file = output / PROGRESS_FILE
    progress: dict[str, Any] = {
        "bundle": root.name,
        "split": split,
        "finished": [],
        "parent_run_id": None,
    }
    _check_init_from(parent, split, single_run=len(runs) == 1)
    if resume and progress_file.is_file():
        progress = json.loads(progress_file.read_text())
        if progress.get("bundle") != root.name or progress.get("split") != split:
            raise ValueError(
                f"{progress_file}: the finished stages were trained for bundle "
                f"{progress.get('bundle')} with {progress.get('split')}, not {split}; resume "
                "with the same data and split settings, or train into a new output folder"
            )
    tracking = len(runs) > 1 and bool(parent.get_parsed_content("tracking_enabled", default=False))
    tracking_uri = parent.get_parsed_content("tracking_uri") if tracking else None
    if tracking and progress.get("parent_run_id"):
        reopen_parent_run(tracking_uri, progress["parent_run_id"])
    elif tracking:
        progress["parent_run_id"] = start_parent_run(
            tracking_uri,
            parent.get_parsed_content("experiment_name"),
            f"{root.name}_{time.strftime('%Y%m%d_%H%M%S')}",
            params={
                "bundle": root.name,
                "stages": len(runs),
                "dataset_dir": settings["dataset_dir"],
            },
        )
    write_atomic(progress_file, json.dumps(progress, indent=2))

    logging_file = root / "configs" / "logging.conf"
    resuming = resume
    status = "FAILED"
    try:
        for index, (label, config_files, parser, stage) in enumerate(runs):
            if resume and label in progress["finished"]:
                logger.info("training stage %d/%d: %s done before", index + 1, len(runs), label)
                continue
            stage = {key: value for key, value in stage.items() if _settable(parser, key)}
            if progress.get("parent_run_id"):
                stage["parent_run_id"] = progress["parent_run_id"]
            stage["save_execute_config"] = str(output / f"{label}_config.json")
            parser.update(stage)
            # the first run left continues from its last checkpoint; any other starts afresh
            stage["resume"] = _prepare_resume(parser, resuming, label)
            resuming = False
            parser.update({"resume": stage["resume"]})
            logger.info("training stage %d/%d: %s", index + 1, len(runs), label)
            parser.export_config_file(parser.get(), stage["save_execute_config"])
            run_bundle(
                config_file=[str(f) for f in config_files],
                logging_file=str(logging_file) if logging_file.is_file() else None,
                **stage,
            )
            progress["finished"].append(label)
            write_atomic(progress_file, json.dumps(progress, indent=2))
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if tracking and progress.get("parent_run_id"):
            end_parent_run(tracking_uri, progress["parent_run_id"], status)
    best = output / "models" / "model.pt"
    if not best.is_file():
        raise FileNotFoundError(f"training ended without a best checkpoint: {best}")
    return best


def _check_init_from(
    parser: ConfigParser, split: Mapping[str, Any], single_run: bool = True
) -> None:
    """Refuse an ``init_from`` run trained on another split.

    Its models would have trained on scans that are validation scans here, or, for fold
    models, on the scans they are to describe. A bundle of one run may start from a model file
    instead (a shipped ``models/model.pt``).

    Args:
        parser: the first stage's config.
        split: this training's split settings.
        single_run: whether the bundle trains one run (one model).

    Raises:
        ValueError: ``init_from`` is not an ``ichbundles train`` output folder (or, for one
            run, a model file), or its ``training_stages.json`` records other split settings.
    """
    init_from = parser.get("init_from")
    if not init_from:
        return
    earlier = Path(init_from) / PROGRESS_FILE
    if Path(init_from).is_file():
        if not single_run:
            raise ValueError(
                f"init_from: {init_from} is a file; this bundle trains several stages, each "
                "from its own model: give an `ichbundles train` output folder"
            )
        # RUN/models/model.pt is checked as its run; a shipped model records no split (its
        # docs give its provenance)
        earlier = Path(init_from).parents[1] / PROGRESS_FILE
        if not earlier.is_file():
            return
    if not earlier.is_file():
        raise ValueError(f"init_from: no {earlier}; give an `ichbundles train` output folder")
    recorded = json.loads(earlier.read_text()).get("split")
    if recorded != split:
        raise ValueError(
            f"{earlier}: init_from was trained with {recorded}, not {split}; start from a run "
            "with the same data and split settings"
        )


def _stage_runs(
    stages: Sequence[TrainingStage], parsers: Sequence[ConfigParser], settings: Mapping[str, Any]
) -> list[tuple[str, list[Path], ConfigParser, dict[str, Any]]]:
    """Every run of every stage: its label, config files, parser and settings."""
    runs = []
    for stage, parser in zip(stages, parsers, strict=True):
        label = stage.configs[-1].stem
        own = {key: value for key, value in settings.items() if _settable(parser, key)}
        if stage.repeat is None:
            runs.append((label, stage.configs, parser, own))
            continue
        counter = ConfigParser(copy.deepcopy(parser.get()))
        counter.update(own)
        times = int(counter.get_parsed_content(stage.times))
        for i in range(times):
            repeated = ConfigParser()
            repeated.read_config([str(f) for f in stage.configs])
            runs.append(
                (f"{label}_{stage.repeat}{i}", stage.configs, repeated, {**own, stage.repeat: i})
            )
    labels = [run[0] for run in runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"training stages need distinct last config names, got {labels}")
    return runs


def _prepare_resume(parser: ConfigParser, resume: bool, label: str) -> bool:
    """Whether a run continues from its last checkpoint.

    A resumed run continues when its ``train#checkpoint_loader#load_path`` exists (or when its
    config names none, so the config decides). A fresh run removes a last checkpoint left by an
    earlier training, so that a later ``--resume`` cannot take it for this run's.
    """
    if _RESUME_PATH_ID not in parser:
        return resume
    last = Path(parser.get_parsed_content(_RESUME_PATH_ID))
    if resume and not last.is_file():
        logger.warning("%s: no %s to continue from; the stage starts afresh", label, last)
    if not resume and last.is_file():
        logger.info("%s: removing %s of an earlier training", label, last)
        last.unlink()
    return resume and last.is_file()
