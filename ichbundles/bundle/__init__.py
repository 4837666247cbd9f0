"""Bundle machinery: locating bundles, datalists, handlers, tracking, training runs, and
checkpoints that carry their settings (:mod:`ichbundles.bundle.checkpoint`)."""

from __future__ import annotations

from ichbundles.bundle.paths import BundleNotFoundError, available_bundles, bundle_path
from ichbundles.bundle.train import parse_overrides, train_bundle

__all__ = [
    "BundleNotFoundError",
    "available_bundles",
    "bundle_path",
    "parse_overrides",
    "train_bundle",
]
