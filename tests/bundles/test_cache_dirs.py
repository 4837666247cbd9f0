"""Every bundle caches preprocessed scans under a folder named after the preprocessing version."""

from __future__ import annotations

from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from ichbundles.constants import PREPROCESSING_VERSION

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


@pytest.mark.parametrize("bundle", ["ich_adjacent_slices", "ich_attention_mil", "ich_cnn_lstm"])
def test_cache_dir_names_the_preprocessing_version(bundle, tmp_path):
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / bundle / "configs" / "train.yaml"))
    parser["output_dir"] = str(tmp_path)
    parser.parse()
    windows, size = parser["windows"], parser["image_size"]
    expected = tmp_path / "cache" / f"{windows}_{size}_v{PREPROCESSING_VERSION}"
    assert Path(parser.get_parsed_content("cache_dir")) == expected
