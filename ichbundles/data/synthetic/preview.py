"""PNG contact sheet of synthetic slices (brain window) with their labels."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ichbundles.constants import SUBTYPES, WINDOW_PRESETS

from .scan import SyntheticScan

__all__ = [
    "BRAIN_WINDOW",
    "PreviewTile",
    "preview_tiles",
    "render_preview",
    "save_grid",
    "select_tiles",
]

#: Window of the preview tiles: the brain window (level, width) of the project's presets.
BRAIN_WINDOW: tuple[float, float] = WINDOW_PRESETS["adjacent"][0]
_TILE = 256  # tiles are scaled to this many pixels so the captions stay legible


@dataclass(frozen=True, eq=False)  # compared by identity: images are arrays
class PreviewTile:
    """One windowed slice (uint8, H x W), its caption and the subtypes it shows."""

    image: np.ndarray
    caption: str
    subtypes: tuple[str, ...]


@functools.cache
def _brain_windower():
    """The project's ``CTWindow`` for the brain window, built once per process."""
    # Imported here: it pulls in torch and MONAI, which generate_dataset needs only for previews.
    from ichbundles.transforms import CTWindow

    return CTWindow([BRAIN_WINDOW])


def _windowed(hu: np.ndarray) -> np.ndarray:
    """Brain-window slices (..., H, W) in HU into uint8 (0-255) of the same shape."""
    return (np.asarray(_brain_windower()(hu))[..., 0, :, :] * 255.0).astype(np.uint8)


def preview_tiles(scan: SyntheticScan, name: str, max_tiles: int = 4) -> list[PreviewTile]:
    """The most telling slices of a scan: for each subtype its largest slice, else a mid slice."""
    chosen: dict[int, list[str]] = {}
    for k, subtype in enumerate(SUBTYPES):
        if scan.label_pixels is not None and scan.slice_labels[:, k].any():
            best = int(
                np.argmax(np.where(scan.slice_labels[:, k] > 0, scan.label_pixels[:, k], -1))
            )
            chosen.setdefault(best, []).append(subtype)
    if not chosen:
        chosen[int(len(scan.hu) * 0.6)] = []
    picked = sorted(chosen.items())[:max_tiles]
    images = _windowed(scan.hu[[index for index, _ in picked]])  # one call: torch is costly
    tiles = []
    for (index, found), image in zip(picked, images, strict=True):
        labels = [SUBTYPES[k] for k in np.flatnonzero(scan.slice_labels[index, :-1])]
        caption = f"{name} #{index}: {', '.join(labels) or 'no bleed'}"
        tiles.append(PreviewTile(image, caption, tuple(found)))
    return tiles


def save_grid(tiles: Sequence[PreviewTile], path: str | os.PathLike, columns: int = 4) -> None:
    """Lay the tiles out in a grid with captions and save a PNG."""
    if not tiles:
        raise ValueError("no slices to preview")
    columns = min(columns, len(tiles))
    rows = -(-len(tiles) // columns)
    caption_h = 16
    sheet = Image.new("L", (columns * _TILE, rows * (_TILE + caption_h)), 0)
    draw = ImageDraw.Draw(sheet)
    for i, tile in enumerate(tiles):
        x, y = (i % columns) * _TILE, (i // columns) * (_TILE + caption_h)
        image = Image.fromarray(tile.image).resize((_TILE, _TILE), Image.Resampling.BILINEAR)
        sheet.paste(image, (x, y + caption_h))
        draw.text((x + 3, y + 2), tile.caption, fill=255)
    sheet.save(path)


def select_tiles(candidates: Sequence[PreviewTile], limit: int = 12) -> list[PreviewTile]:
    """Pick up to ``limit`` tiles that show every subtype present, then fill in order."""
    picked: list[PreviewTile] = []
    for subtype in SUBTYPES:
        if not any(subtype in t.subtypes for t in picked):
            picked += [t for t in candidates if subtype in t.subtypes][:1]
    picked += [t for t in candidates if t not in picked]
    return picked[:limit]


def render_preview(
    scans: SyntheticScan | Sequence[SyntheticScan], path: str | os.PathLike, limit: int = 12
) -> None:
    """Save a PNG grid of brain-window slices of ``scans`` with each slice's labels.

    Args:
        scans: one scan or several; slices showing each subtype present are included first.
        path: PNG to write.
        limit: most tiles in the grid.
    """
    if isinstance(scans, SyntheticScan):
        scans = [scans]
    candidates = [t for i, s in enumerate(scans) for t in preview_tiles(s, f"scan {i}")]
    save_grid(select_tiles(candidates, limit), path)
