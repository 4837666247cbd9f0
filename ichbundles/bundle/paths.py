"""Where bundles live: a bundle name under ``bundles/`` or a path to a bundle folder.

In a source checkout or an editable install the bundles are the repository's ``bundles/``
folder, so edits there take effect at once. A wheel or a non-editable ``pip install .`` carries
them as package data under ``ichbundles/_share/`` (see ``setup.py``), found with
``importlib.resources``.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = [
    "BUNDLES_DIR",
    "CONFIGS_DIR",
    "BundleNotFoundError",
    "available_bundles",
    "bundle_config",
    "bundle_path",
]


def _shared_dir(name: str) -> Path:
    """The folder ``name`` (``bundles`` or ``configs``) shipped with the package, on disk.

    Raises:
        RuntimeError: the package is installed in a form that is not plain files (a zip):
            MONAI's ConfigParser reads bundle configs by path.
    """
    package = resources.files("ichbundles")
    installed = package / "_share" / name
    if installed.is_dir():
        if not isinstance(installed, Path):
            raise RuntimeError(
                f"ichbundles' {name}/ is inside {package} and not a folder on disk; install "
                "ich-bundles as plain files (pip install, not a zipped package)"
            )
        return installed.resolve()
    # Source checkout or editable install: the folder beside the package, in the repository
    # (never a folder of that name beside an installed package in site-packages).
    repository = Path(str(package)).resolve().parent
    if not (repository / "pyproject.toml").is_file():
        return Path(str(installed))  # not shipped (an optional folder): absent
    return repository / name


#: The bundles: the repository's ``bundles/``, or the installed package's copy of it.
BUNDLES_DIR = _shared_dir("bundles")

#: Config fragments shared by the bundles (``configs/``); it may not exist.
CONFIGS_DIR = _shared_dir("configs")


class BundleNotFoundError(FileNotFoundError):
    """A bundle name or path that is not a bundle folder; the message names the choices."""


def available_bundles(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the bundles under ``root``: folders holding ``configs/metadata.json``.

    Args:
        root: the folder of named bundles (default ``BUNDLES_DIR``, read at call time).
    """
    root = Path(BUNDLES_DIR if root is None else root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "configs" / "metadata.json").is_file())


def bundle_path(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Resolve a bundle given by name (a folder under ``root``) or by path.

    Args:
        name_or_path: a bundle name such as ``"ich_cnn_lstm"`` or a path to a bundle folder (one
            with ``configs/metadata.json``).
        root: the folder of named bundles (default ``BUNDLES_DIR``, read at call time).

    Returns:
        The absolute bundle folder.

    Raises:
        BundleNotFoundError: neither a bundle folder nor a known name; the message lists the
            bundles under ``root``.
    """
    root = BUNDLES_DIR if root is None else root
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
