"""Where bundles live: a bundle name under ``bundles/`` or a path to a bundle folder."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "BUNDLES_DIR",
    "BundleNotFoundError",
    "available_bundles",
    "bundle_config",
    "bundle_path",
]

#: The ``bundles/`` folder of the repository (beside the ``ichbundles`` package).
BUNDLES_DIR = Path(__file__).resolve().parents[2] / "bundles"


class BundleNotFoundError(FileNotFoundError):
    """A bundle name or path that is not a bundle folder; the message names the choices."""


def available_bundles(root: str | os.PathLike = BUNDLES_DIR) -> list[str]:
    """Names of the bundles under ``root``: folders holding ``configs/metadata.json``."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "configs" / "metadata.json").is_file())


def bundle_path(name_or_path: str | os.PathLike, root: str | os.PathLike = BUNDLES_DIR) -> Path:
    """Resolve a bundle given by name (a folder under ``root``) or by path.

    Args:
        name_or_path: a bundle name such as ``"ich_cnn_lstm"`` or a path to a bundle folder (one
            with ``configs/metadata.json``).
        root: the folder of named bundles.

    Returns:
        The absolute bundle folder.

    Raises:
        BundleNotFoundError: neither a bundle folder nor a known name; the message lists the
            bundles under ``root``.
    """
    for candidate in (Path(name_or_path), Path(root) / str(name_or_path)):
        if (candidate / "configs" / "metadata.json").is_file():
            return candidate.resolve()
    choices = ", ".join(available_bundles(root)) or "none"
    raise BundleNotFoundError(
        f"no bundle {str(name_or_path)!r}: give a bundle folder (with configs/metadata.json) or "
        f"one of: {choices}"
    )


def bundle_config(bundle: str | os.PathLike, name: str) -> Path:
    """A config file of a bundle, e.g. ``bundle_config("ich_cnn_lstm", "train.yaml")``.

    Raises:
        BundleNotFoundError: unknown bundle, or a bundle without that config.
    """
    path = bundle_path(bundle) / "configs" / name
    if not path.is_file():
        raise BundleNotFoundError(f"bundle {str(bundle)!r} has no configs/{name}")
    return path
