"""Paper 001's results table: RSNA weighted log loss and CQ500-style scan AUCs, stage 1 alone
beside stage 1 + fusion."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ichbundles.bundle.report import write_atomic

__all__ = [
    "TABLE_ROWS",
    "AdjacentTable",
    "adjacent_table",
    "read_stage_metrics",
    "write_adjacent_table",
]

#: Rows of Table I of paper 001, in its order: (label, class).
TABLE_ROWS = (
    ("ICH (any subtypes)", "any"),
    ("Intraparenchymal", "intraparenchymal"),
    ("Intraventricular", "intraventricular"),
    ("Subarachnoid", "subarachnoid"),
    ("Subdural", "subdural"),
    ("Extradural", "epidural"),
)
_SCHEMA = "ichbundles.adjacent.table/v1"
#: Column titles of :func:`write_adjacent_table` and their short names in flat metrics.
_COLUMNS = {"stage 1 (2D baseline)": "stage1", "stage 1 + fusion": "fusion"}


@dataclass(frozen=True)
class AdjacentTable:
    """What :func:`write_adjacent_table` compared and wrote.

    Attributes:
        columns: column title to :func:`read_stage_metrics` figures.
        markdown: the ``table.md`` file.
        json: the ``table.json`` file.
    """

    columns: dict[str, dict[str, Any]]
    markdown: Path
    json: Path

    def metrics(self) -> dict[str, float]:
        """Flat figures for experiment tracking, e.g. ``fusion_scan_auc_any``, ``stage1_wll``."""
        flat = {}
        for title, figures in self.columns.items():
            name = _COLUMNS.get(title, title)
            flat[f"{name}_wll"] = figures["slice_wll"]
            flat[f"{name}_scan_mean_auc"] = figures["scan_mean_auc"]
            for cls, auc in figures["scan_auc"].items():
                flat[f"{name}_scan_auc_{cls}"] = auc
        # an AUC is undefined for a class without positive (or negative) scans
        return {key: value for key, value in flat.items() if value is not None}


def read_stage_metrics(eval_dir: str | os.PathLike) -> dict[str, Any]:
    """The figures of one evaluated model from the ``ScanPredictionWriter`` outputs.

    Args:
        eval_dir: folder with ``metrics/metrics.json`` (slice level) and
            ``scan_metrics/metrics.json`` (scan level).

    Returns:
        ``slice_wll``, ``slice_mean_auc``, ``scan_auc`` per class, ``scan_mean_auc``,
        ``scan_any_auc_ci`` and the numbers of slices and scans.

    Raises:
        FileNotFoundError: a metrics file is missing.
    """
    eval_dir = Path(eval_dir)
    slices = json.loads((eval_dir / "metrics" / "metrics.json").read_text())["slice_level"]
    scans = json.loads((eval_dir / "scan_metrics" / "metrics.json").read_text())["scan_level"]
    return {
        "slice_wll": slices["weighted_log_loss"],
        "slice_mean_auc": slices["mean_auc"],
        "scan_auc": {c: scans["per_class"][c]["auc"] for _, c in TABLE_ROWS},
        "scan_mean_auc": scans["mean_auc"],
        "scan_any_auc_ci": scans["per_class"]["any"].get("auc_ci"),
        "slices": slices["n"],
        "scans": scans["n"],
    }


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def adjacent_table(columns: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown table laid out like Table I of paper 001, one column per model.

    Args:
        columns: column title to :func:`read_stage_metrics` figures, e.g.
            ``{"stage 1 (2D baseline)": ..., "stage 1 + fusion": ...}``.
    """
    titles = list(columns)
    lines = [
        "| findings (scan-level AUC) | " + " | ".join(titles) + " |",
        "|---|" + "---|" * len(titles),
    ]
    for label, name in TABLE_ROWS:
        cells = [_cell(columns[t]["scan_auc"][name]) for t in titles]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    means = " | ".join(_cell(columns[t]["scan_mean_auc"]) for t in titles)
    lines.append(f"| Mean | {means} |")
    wll = " | ".join(_cell(columns[t]["slice_wll"]) for t in titles)
    lines.append(f"| RSNA weighted log loss (slices) | {wll} |")
    first = columns[titles[0]]
    lines.append("")
    lines.append(f"{first['scans']} scans, {first['slices']} slices.")
    return "\n".join(lines) + "\n"


def write_adjacent_table(
    stage1_dir: str | os.PathLike, fusion_dir: str | os.PathLike, out_dir: str | os.PathLike
) -> AdjacentTable:
    """Write ``table.md`` and ``table.json`` comparing stage 1 alone with stage 1 + fusion.

    Args:
        stage1_dir: evaluation folder of stage 1 alone.
        fusion_dir: evaluation folder of stage 1 + fusion.
        out_dir: folder of the two files.
    """
    dirs = dict(zip(_COLUMNS, (stage1_dir, fusion_dir), strict=True))
    columns = {title: read_stage_metrics(folder) for title, folder in dirs.items()}
    out_dir = Path(out_dir)
    content = {"schema": _SCHEMA, "columns": columns}
    return AdjacentTable(
        columns=columns,
        markdown=write_atomic(out_dir / "table.md", adjacent_table(columns)),
        json=write_atomic(out_dir / "table.json", json.dumps(content, indent=2)),
    )
