"""Small data for the metrics tests: random labels/probabilities and files in the real layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ichbundles.constants import CQ500_READER_COLUMNS, ICH_CLASSES, NUM_CLASSES


def random_data(n: int, seed: int, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Labels with every class present and informative probabilities in (0, 1)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, NUM_CLASSES)) < 0.3).astype(np.uint8)
    y[:2] = [[0] * NUM_CLASSES, [1] * NUM_CLASSES]  # both values in every class
    y[:, -1] = y.max(axis=1)
    p = 1 / (1 + np.exp(-(rng.normal(-1, 1.5, y.shape) + 2 * y)))
    if ties:
        p = np.round(p, 1)
    return y, np.clip(p, 0.0, 1.0)


def write_rsna(path: Path, keys: list[str], values: np.ndarray, shuffle_seed: int | None = None):
    """Write an RSNA ``ID,Label`` file, optionally in shuffled row order."""
    ids = [f"ID_{k}_{c}" for k in keys for c in ICH_CLASSES]
    frame = pd.DataFrame({"ID": ids, "Label": np.asarray(values).ravel()})
    if shuffle_seed is not None:
        frame = frame.sample(frac=1.0, random_state=shuffle_seed)
    frame.to_csv(path, index=False)
    return path


def write_scans(path: Path, keys: list[str], values: np.ndarray, key: str = "series_instance_uid"):
    frame = pd.DataFrame(np.asarray(values), columns=list(ICH_CLASSES))
    frame.insert(0, key, keys)
    frame.to_csv(path, index=False)
    return path


def write_reads(path: Path, names: list[str], y: np.ndarray) -> Path:
    """CQ500 reads.csv whose reader majority is ``y`` (R3 disagrees, R1 and R2 agree)."""
    frame = pd.DataFrame({"name": names, "Category": "B1"})
    for cls, column in CQ500_READER_COLUMNS.items():
        values = y[:, ICH_CLASSES.index(cls)]
        frame[f"R1:{column}"] = values
        frame[f"R2:{column}"] = values
        frame[f"R3:{column}"] = 1 - values
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def slice_files(tmp_path: Path):
    """RSNA labels, predictions and a slice map: 8 scans x 5 slices."""
    n = 40
    y, p = random_data(n, seed=3)
    keys = [f"{i:08x}" for i in range(n)]
    scans = [f"1.2.3.{i // 5}" for i in range(n)]
    labels = write_rsna(tmp_path / "labels.csv", keys, y)
    pred = write_rsna(tmp_path / "pred.csv", keys, np.round(p, 6), shuffle_seed=1)
    slice_map = tmp_path / "map.csv"
    pd.DataFrame({"sop_instance_uid": keys, "series_instance_uid": scans}).to_csv(
        slice_map, index=False
    )
    return {
        "labels": labels,
        "predictions": pred,
        "slice_map": slice_map,
        "keys": keys,
        "scans": scans,
        "y": y,
        "p": np.round(p, 6),
    }
