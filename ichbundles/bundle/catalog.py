"""The bundles at a glance: version, paper and shipped model (``ichbundles bundles``).

A bundle's ``configs/metadata.json`` may describe the model it ships under ``"shipped_model"``::

    "shipped_model": {
        "file": "models/model.pt",
        "sha256": "...",
        "size_bytes": 4718592,
        "results": {"scan_any_auc": 0.95, "scan_any_auc_ci": [0.93, 0.97],
                    "slice_any_auc": 0.9, "slice_wll": 0.1,
                    "test_set": "120 scans, ichbundles synth --seed 1"}
    }
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ichbundles.bundle import paths

__all__ = ["bundle_summaries", "bundle_summary", "format_bundle_table", "short_reference"]

_URL = re.compile(r"https?://\S+")
_YEAR = re.compile(r"\b(?:19|20)\d{2}\b")


def short_reference(reference: str) -> str:
    """First author and year of a reference, e.g. ``"Nguyen et al. 2020"``.

    Args:
        reference: a reference written ``"Surname, I., Other, I. Title. Venue 2020. URL"``.

    Returns:
        The text before the first comma, ``et al.``, and the first year outside URLs (arXiv
        numbers such as 2005.10992 look like years); no year when there is none.
    """
    text = _URL.sub("", reference).strip()
    if not text:
        return ""
    author = text.split(",", 1)[0].strip()
    year = _YEAR.search(text)
    return f"{author} et al." + (f" {year.group()}" if year else "")


def _shipped_model(folder: Path, metadata: dict[str, Any]) -> tuple[dict | None, str | None]:
    """The shipped model's figures, or ``None`` and the declared file when it is not there."""
    entry = metadata.get("shipped_model")
    if not isinstance(entry, dict) or not entry.get("file"):
        return None, None
    path = folder / entry["file"]
    if not path.is_file():
        return None, str(entry["file"])
    results = dict(entry.get("results") or {})
    size = path.stat().st_size
    model = {
        "file": str(entry["file"]),
        "path": str(path),
        "size_bytes": size,
        "size_mb": round(size / 1e6, 1),
        "sha256": entry.get("sha256"),
        "scan_any_auc": results.get("scan_any_auc"),
        "scan_any_auc_ci": results.get("scan_any_auc_ci"),
        "test_set": results.get("test_set"),
        "results": results,
    }
    return model, None


def bundle_summary(
    name_or_path: str | os.PathLike, root: str | os.PathLike | None = None
) -> dict[str, Any]:
    """What ``ichbundles bundles`` shows of one bundle.

    Args:
        name_or_path: a bundle name under ``root`` or a bundle folder.
        root: the folder of named bundles (default ``paths.BUNDLES_DIR``).

    Returns:
        ``name`` (the folder name), ``title`` and ``version`` (metadata.json), ``paper`` (first
        author and year of the first reference, else the title), ``reference``, ``path``,
        ``shipped_model`` (file, path, size in bytes and MB, sha256, scan "any" AUC and its CI,
        test set and every result; ``None`` when the bundle ships no model or its file is
        absent) and ``shipped_model_missing`` (the declared file when it is absent, else
        ``None``).

    Raises:
        BundleNotFoundError: not a bundle.
        ValueError: metadata.json is not valid JSON.
    """
    folder = paths.bundle_path(name_or_path, root)
    metadata_file = folder / "configs" / "metadata.json"
    try:
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{metadata_file}: not valid JSON ({error})") from None
    references = metadata.get("references") or []
    reference = str(references[0]) if references else ""
    model, missing = _shipped_model(folder, metadata)
    return {
        "name": folder.name,
        "title": metadata.get("name", folder.name),
        "version": metadata.get("version", ""),
        "paper": short_reference(reference) or metadata.get("name", folder.name),
        "reference": reference,
        "path": str(folder),
        "shipped_model": model,
        "shipped_model_missing": missing,
    }


def bundle_summaries(root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """``bundle_summary`` of every bundle under ``root`` (default ``paths.BUNDLES_DIR``)."""
    return [bundle_summary(name, root) for name in paths.available_bundles(root)]


def _model_text(summary: dict[str, Any]) -> str:
    model = summary["shipped_model"]
    if model is None:
        missing = summary["shipped_model_missing"]
        return "no shipped model" + (f" ({missing} is missing)" if missing else "")
    parts = [f"{model['file']}, {model['size_bytes'] / 1e6:.1f} MB"]
    auc, ci = model["scan_any_auc"], model["scan_any_auc_ci"]
    if auc is not None:
        figure = f"scan any AUC {auc:.3f}"
        if ci:
            figure += f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})"
        if model["test_set"]:
            figure += f" on {model['test_set']}"
        parts.append(figure)
    return ", ".join(parts)


def format_bundle_table(summaries: Sequence[dict[str, Any]]) -> str:
    """One aligned row per bundle: name, version, paper, shipped model and its figures."""
    header = ("bundle", "version", "paper", "shipped model")
    rows = [header] + [
        (s["name"], str(s["version"]), s["paper"], _model_text(s)) for s in summaries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    )
