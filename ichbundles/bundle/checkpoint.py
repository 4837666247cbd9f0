"""Checkpoints that carry their settings: weights plus what inference must build around them.

A checkpoint written by a bundle's training (``models/model.pt``, ``checkpoint_last.pt``) holds,
beside the weights, the network and preprocessing settings it was trained with: a flat dict
keyed by the bundle's config ids (``image_size``, ``backbone``, ...), with the bundle's name and
a format version::

    {"model": state_dict, "settings": {"format": "ichbundles.checkpoint/1",
                                       "bundle": "ich_cnn_lstm", "image_size": 256, ...}}

Each bundle's ``train.yaml`` lists its settings once, as ``model_settings``, and MONAI's
``CheckpointSaver`` stores them through :class:`ModelSettings`::

    save_dict:
      model: "@network"
      settings: "$ichbundles.bundle.checkpoint.ModelSettings(@model_settings)"

The file stays a dict of tensors and plain values, so ``torch.load(weights_only=True)`` reads
it. Inference configs take their setting ids from the checkpoint (:func:`trained_settings`) and
check the final values against it (:func:`check_settings`); ``ichbundles predict`` and
``export`` apply them as overrides (:func:`apply_checkpoint_settings`). Checkpoints without
settings (older ones, bare state dicts) keep working with the config's values, unchecked.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser

from ichbundles.bundle.paths import bundle_path
from ichbundles.bundle.report import file_sha256

__all__ = [
    "FORMAT",
    "SHIPPED_MODEL",
    "ModelSettings",
    "PackagedModel",
    "apply_checkpoint_settings",
    "check_settings",
    "init_checkpoint",
    "load_weights",
    "package_model",
    "read_checkpoint",
    "read_state_dict",
    "shipped_checkpoint",
    "trained_settings",
]

#: Format of the settings dict; a reader refuses other versions.
FORMAT = "ichbundles.checkpoint/1"
#: Where a bundle ships its trained model, as in MONAI's model zoo.
SHIPPED_MODEL = Path("models") / "model.pt"
#: Keys of the settings dict that are not config ids.
_META_KEYS = ("format", "bundle")
#: Prefixes that wrappers add to every key: DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: Keys under which a checkpoint may hold the weights: CheckpointSaver's best model (``model``)
#: and the bundles' ``checkpoint_last.pt`` (``network``).
_WEIGHT_KEYS = ("model", "network")
#: torch.load's boilerplate around the reason it refuses a pickle.
_REFUSAL_BOILERPLATE = (
    "Weights only load failed",
    "Please file an issue",
    "Check the documentation",
)


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists, recursively: settings compare and save the same way.

    Raises:
        TypeError: a value other than str, int, float, bool, None, lists and dicts of them (a
            weights-only load would refuse the checkpoint).
    """
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"checkpoint settings hold plain values only, got {type(value).__name__}")


class ModelSettings:
    """A checkpoint's settings as an object with ``state_dict``, for MONAI's savers.

    ``CheckpointSaver`` and :class:`~ichbundles.bundle.handlers.LastCheckpointSaver` save
    ``state_dict()`` of every object they are given; this one gives the settings with the format
    version, as plain values (tuples become lists).

    Args:
        settings: config id to value (and ``bundle``, the bundle's name).
    """

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings = _plain(dict(settings or {}))

    def state_dict(self) -> dict[str, Any]:
        """The settings with ``format``."""
        return {"format": FORMAT, **self.settings}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Replace the settings with saved ones.

        Raises:
            ValueError: not a settings dict of this format.
        """
        if not isinstance(state_dict, Mapping) or state_dict.get("format") != FORMAT:
            found = state_dict.get("format") if isinstance(state_dict, Mapping) else state_dict
            raise ValueError(f"not checkpoint settings of format {FORMAT}: {found!r}")
        self.settings = {k: v for k, v in _plain(state_dict).items() if k != "format"}


def _first_reason(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith(_REFUSAL_BOILERPLATE)]
    return (reasons or lines or ["no reason given"])[0].removeprefix("WeightsUnpickler error: ")


def _load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with every failure as one ``ValueError`` line."""
    if path.is_dir():
        raise ValueError(f"{path}: a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file, not a checkpoint")
    with open(path, "rb") as f:
        head = f.read(512)
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": refused below anyway
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):
            raise ValueError(
                f"{path}: refused: it holds Python objects that a weights-only load does not "
                f"allow ({_first_reason(str(error))}); load only checkpoints you trust"
            ) from None
        reason = _first_reason(str(error))
        raise ValueError(f"{path}: not a PyTorch checkpoint ({reason})") from None
    except Exception as error:  # torch raises KeyError, EOFError, RuntimeError... on bad bytes
        if head.startswith(b"PK\x03\x04"):  # a zip archive: torch's format, cut short
            detail = _first_reason(str(error)).split(". ")[0]
            raise ValueError(f"{path}: truncated or damaged checkpoint ({detail})") from None
        try:
            head.decode("utf-8")
            kind = "a text file"
        except UnicodeDecodeError:
            kind = "an unknown format"
        raise ValueError(f"{path}: not a PyTorch checkpoint ({kind})") from None


def read_checkpoint(
    checkpoint: str | os.PathLike,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A checkpoint's weights and settings.

    Accepts ``{"model": state_dict, ...}`` (``CheckpointSaver``), ``{"network": state_dict,
    ...}`` (``checkpoint_last.pt``) and a bare state dict; ``module.``/``_orig_mod.`` prefixes
    are stripped from the weights' keys.

    Returns:
        The state dict and the settings (with ``format`` and ``bundle``; empty when the
        checkpoint carries none).

    Raises:
        FileNotFoundError: no such file.
        ValueError: one line naming the file and the problem: a folder, an empty, text,
            truncated or damaged file, a pickle a weights-only load refuses, no weights inside,
            or settings of another format.
    """
    path = Path(checkpoint)
    state = _load(path)
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: holds a {type(state).__name__}, not a state dict")
    settings: dict[str, Any] = {}
    if "settings" in state:
        record = ModelSettings()
        try:
            record.load_state_dict(state["settings"])
        except (TypeError, ValueError) as error:  # another format, or values that are not plain
            raise ValueError(f"{path}: {error}") from None
        settings = record.state_dict()
    weights = next(
        (state[k] for k in _WEIGHT_KEYS if isinstance(state.get(k), Mapping)),
        {k: v for k, v in state.items() if k != "settings"},
    )
    if not weights or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        keys = ", ".join(map(str, state))[:200]
        raise ValueError(f"{path}: no state dict of tensors in it (keys: {keys})")
    cleaned = {}
    for key, value in weights.items():
        for prefix in _WRAPPER_PREFIXES:
            key = key.removeprefix(prefix)
        cleaned[key] = value
    return cleaned, settings


def read_state_dict(checkpoint: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A checkpoint's weights (see :func:`read_checkpoint`)."""
    return read_checkpoint(checkpoint)[0]


def trained_settings(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """The settings a checkpoint carries, for a config's setting ids.

    Used as ``trained_settings: "$ichbundles.bundle.checkpoint.trained_settings(@checkpoint)"``
    with ``image_size: "$@trained_settings.get('image_size', 256)"``.

    Args:
        checkpoint: the checkpoint file the config will load.

    Returns:
        The settings; empty when the checkpoint carries none or does not exist (yet), so a
        config can be parsed, and its network built, without a model.

    Raises:
        ValueError: the file exists but is not a readable checkpoint (see :func:`read_checkpoint`).
    """
    return read_checkpoint(checkpoint)[1] if Path(checkpoint).exists() else {}


def _describe(settings: Mapping[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{k}={settings[k]}" for k in keys)


def _conflicts(trained: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """Config ids whose value in ``given`` differs from the one ``trained`` records."""
    return [
        key
        for key in given
        if key in trained and key not in _META_KEYS and _plain(given[key]) != _plain(trained[key])
    ]


def _check_bundle(checkpoint: str | os.PathLike, trained: Mapping[str, Any], bundle: Any) -> None:
    if trained and bundle and trained.get("bundle") != bundle:
        raise ValueError(
            f"{checkpoint}: a checkpoint of {trained.get('bundle')}, not of {bundle}; give a "
            f"model trained with bundle {bundle}"
        )


def init_checkpoint(init_from: str | os.PathLike | None) -> str | None:
    """The model a training starts from (``init_from`` of a single-stage bundle's train.yaml).

    Args:
        init_from: a checkpoint file (a shipped ``models/model.pt``, say), an earlier
            ``ichbundles train`` output folder (its ``models/model.pt``), or ``None``.

    Returns:
        The checkpoint file, or ``None`` for none.
    """
    if init_from is None:
        return None
    path = Path(init_from)
    return str(path if path.is_file() else path / SHIPPED_MODEL)


def check_settings(
    checkpoint: str | os.PathLike,
    given: Mapping[str, Any],
    trained: Mapping[str, Any] | None = None,
    source: str = "the config",
) -> None:
    """Fail when the settings a config builds the model with contradict the checkpoint's.

    Used in inference configs' ``initialize`` as
    ``$ichbundles.bundle.checkpoint.check_settings(@checkpoint, @model_settings)``.

    Args:
        checkpoint: the checkpoint file.
        given: the config's ``model_settings`` (its ``bundle`` and setting ids' final values).
        trained: the checkpoint's settings, read from ``checkpoint`` when ``None``.
        source: what gave ``given``, for the message.

    Raises:
        FileNotFoundError: no such checkpoint file.
        ValueError: one line naming the checkpoint, what it was trained with and what
            ``source`` says; or a checkpoint of another bundle. Nothing is checked for a
            checkpoint without settings.
    """
    if trained is None:
        trained = read_checkpoint(checkpoint)[1]
    _check_bundle(checkpoint, trained, given.get("bundle"))
    keys = _conflicts(trained, given)
    if keys:
        raise ValueError(
            f"{checkpoint} was trained with {_describe(trained, keys)}; {source} says "
            f"{_describe(given, keys)}"
        )


def _setting_id(parser: ConfigParser, key: str, settings: Mapping[str, Any]) -> str:
    """The setting id an override targets: ``network_def#hidden`` (``"@hidden"``) is ``hidden``."""
    if "#" in key and key in parser:
        raw = parser[key]
        if isinstance(raw, str) and raw.startswith("@") and raw[1:] in settings:
            return raw[1:]
    return key


def apply_checkpoint_settings(
    parser: ConfigParser,
    checkpoint: str | os.PathLike,
    settings: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
) -> None:
    """Set a config's setting ids to a checkpoint's values, then the user's overrides.

    An override of a setting id, or of a config entry that is a reference to one (such as
    ``network_def#hidden`` for ``"@hidden"``), must agree with the checkpoint.

    Args:
        parser: the bundle config (its ``model_settings#bundle`` names the bundle).
        checkpoint: the checkpoint, for messages.
        settings: its settings (see :func:`read_checkpoint`); empty: overrides only.
        overrides: id-value pairs, as ``monai.bundle run --id value`` sets them.

    Raises:
        ValueError: one line: a checkpoint of another bundle, or overrides that contradict it.
    """
    model_settings = parser.get("model_settings")
    if isinstance(model_settings, Mapping):
        _check_bundle(checkpoint, settings, model_settings.get("bundle"))
    overrides = {_setting_id(parser, k, settings): v for k, v in (overrides or {}).items()}
    check_settings(checkpoint, overrides, trained=settings, source="the override")
    for key, value in settings.items():
        if key not in _META_KEYS and key in parser:
            parser[key] = value
    for key, value in overrides.items():
        parser[key] = value


def load_weights(
    network: torch.nn.Module, checkpoint: str | os.PathLike | Mapping[str, torch.Tensor]
) -> torch.nn.Module:
    """Load a checkpoint (see :func:`read_checkpoint`), or its state dict, into ``network``.

    Floating-point tensors are converted to the network's dtypes (a float16 shipped model loads
    into a float32 network).

    Args:
        network: the module to load into.
        checkpoint: a checkpoint file, or a state dict already read.

    Returns:
        ``network``.

    Raises:
        RuntimeError: keys missing or unexpected (one line naming how many and the first few),
            or tensors of other shapes.
    """
    weights = checkpoint if isinstance(checkpoint, Mapping) else read_state_dict(checkpoint)
    # strict=False so that a wrong checkpoint is summarised in one line rather than listed key
    # by key; shape mismatches still raise inside load_state_dict
    result = network.load_state_dict(weights, strict=False)
    problems = [
        f"{len(keys)} {kind} key(s) ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
        for kind, keys in (("missing", result.missing_keys), ("unexpected", result.unexpected_keys))
        if keys
    ]
    if problems:
        where = "weights" if isinstance(checkpoint, Mapping) else str(checkpoint)
        raise RuntimeError(f"{where}: " + "; ".join(problems))
    return network


def shipped_checkpoint(bundle: str | os.PathLike) -> Path:
    """The trained model a bundle ships, ``<bundle>/models/model.pt``.

    Args:
        bundle: bundle name or folder.

    Raises:
        BundleNotFoundError: no such bundle.
        FileNotFoundError: the bundle ships no model (one line saying how to give one's own).
    """
    root = bundle_path(bundle)
    path = root / SHIPPED_MODEL
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: bundle {root.name} ships no trained model; give one of your own with "
            "--checkpoint (ichbundles train writes OUTPUT/models/model.pt)"
        )
    return path


@dataclass(frozen=True)
class PackagedModel:
    """A model written by :func:`package_model`.

    Attributes:
        path: the file.
        sha256: its hex SHA-256.
        size_bytes: its size.
    """

    path: Path
    sha256: str
    size_bytes: int


def package_model(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    half: bool = False,
    settings: Mapping[str, Any] | None = None,
) -> PackagedModel:
    """Write the model a bundle ships from a trained checkpoint: weights and settings only.

    Optimizer, trainer and other states of ``src`` are left out, wrapper prefixes stripped.

    Args:
        src: a trained checkpoint (``model.pt`` or ``checkpoint_last.pt``).
        dst: the shipped file, e.g. ``bundles/ich_cnn_lstm/models/model.pt``; written to a
            temporary file beside it and renamed.
        half: store floating-point weights as float16 (half the size; inference loads them into
            its float32 network).
        settings: the settings (``bundle`` and config ids) of a checkpoint trained before
            checkpoints carried them; a checkpoint that carries settings must agree.

    Returns:
        The file, its SHA-256 and size.

    Raises:
        ValueError: ``src`` is not a readable checkpoint, carries no settings and none are
            given, or carries other settings than those given.
    """
    weights, carried = read_checkpoint(src)
    if settings is not None:
        check_settings(src, settings, trained=carried, source="the given settings")
        carried = {**ModelSettings(settings).state_dict(), **carried}
    if not carried:
        raise ValueError(
            f"{src}: carries no settings; a shipped model must (give settings=... with the "
            "bundle name and the config ids it was trained with)"
        )
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"model": weights, "settings": carried}, tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep other users of an install from reading it
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return PackagedModel(dst, file_sha256(dst), dst.stat().st_size)
