"""Resolving bundles by name or path, and command-line overrides."""

from __future__ import annotations

import pytest

from ichbundles.bundle import BundleNotFoundError, available_bundles, bundle_path, parse_overrides
from ichbundles.bundle.paths import BUNDLES_DIR


def test_bundle_by_name_and_by_path():
    assert "ich_cnn_lstm" in available_bundles()
    by_name = bundle_path("ich_cnn_lstm")
    assert by_name == (BUNDLES_DIR / "ich_cnn_lstm").resolve()
    assert bundle_path(str(by_name)) == by_name


def test_unknown_bundle_names_the_choices(tmp_path):
    with pytest.raises(BundleNotFoundError, match="ich_cnn_lstm"):
        bundle_path("no_such_bundle")
    with pytest.raises(BundleNotFoundError):
        bundle_path(tmp_path)


def test_parse_overrides():
    parsed = parse_overrides(["train#dataloader#batch_size=4", "resume=true", "x=$@epochs * 2"])
    assert parsed == {"train#dataloader#batch_size": 4, "resume": True, "x": "$@epochs * 2"}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["batch_size"])
