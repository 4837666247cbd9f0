"""Paper 000's evaluation of Att-CNN and Att-CNN + VGPMIL at slice and scan level (its Table 1).

:func:`evaluate_mil` scores one trained pipeline on labelled scans: the Att-CNN itself (``AL``
with attention pooling, ``nAL`` with mean pooling; slice labels from its attention, see
:func:`~ichbundles.mil.attention_slice_predictions`) and, when a fitted VGPMIL is given, the
VGPMIL on the same network's features (``AL-nAw``, ``AL-Aw`` or ``nAL`` after the paper's
names). Each gets accuracy, F1, precision and recall at a threshold and the ROC AUC of its
scores, per level. :func:`summarise_mil_runs` averages several such results (one per seed or
per variant trained) into mean and standard deviation, and :func:`mil_table_markdown` lays them
out like Table 1 of the paper: one block per level, one column per model and setting.

The threshold figures come from :mod:`ichbundles.metrics.threshold` and the AUC from
:mod:`ichbundles.metrics.roc`, as in ``ichbundles evaluate``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ichbundles.bundle.report import write_atomic
from ichbundles.constants import ICH_CLASSES
from ichbundles.metrics.roc import roc_auc
from ichbundles.metrics.threshold import confusion_counts, stats_from_counts
from ichbundles.mil.attention_slices import attention_slice_predictions
from ichbundles.mil.features import MILFeatures
from ichbundles.mil.vgpmil import VGPMIL
from ichbundles.mil.workflow import paper_experiment, vgpmil_inputs

__all__ = [
    "FIGURES",
    "METHODS",
    "MIL_SCHEMA",
    "binary_figures",
    "evaluate_mil",
    "flat_mil_metrics",
    "mil_table_markdown",
    "read_mil_results",
    "summarise_mil_runs",
    "write_mil_results",
]

MIL_SCHEMA = "ichbundles.mil.metrics/v1"
#: Figures per level, in the paper's row order (AUC last; the paper gives it in the text).
FIGURES: tuple[str, ...] = ("accuracy", "f1", "precision", "recall", "auc")
LEVELS: tuple[str, ...] = ("slice", "scan")
#: Table 1 columns: (model, setting).
METHODS: tuple[tuple[str, str], ...] = (
    ("Att-CNN+VGPMIL", "AL-nAw"),
    ("Att-CNN+VGPMIL", "AL-Aw"),
    ("Att-CNN+VGPMIL", "nAL"),
    ("Att-CNN", "AL"),
    ("Att-CNN", "nAL"),
)


def _number(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def binary_figures(truth: np.ndarray, score: np.ndarray, decision: np.ndarray) -> dict:
    """Accuracy, F1, precision and recall of ``decision`` and the ROC AUC of ``score``.

    Args:
        truth: ``(N,)`` labels in {0, 1}.
        score: ``(N,)`` scores ranking the positives (probabilities).
        decision: ``(N,)`` binary decisions.

    Returns:
        ``{figure: value}`` for :data:`FIGURES` plus ``n`` and ``positives``; a figure that is
        undefined (no positives, no positive decisions) is ``None``.
    """
    truth = np.asarray(truth).astype(bool)
    counts = confusion_counts(truth[:, None], np.asarray(decision).astype(bool)[:, None])[0]
    stats = stats_from_counts(counts)
    values = {
        "accuracy": stats["accuracy"],
        "f1": stats["f1"],
        "precision": stats["precision"],
        "recall": stats["sensitivity"],
        "auc": roc_auc(truth, np.asarray(score, dtype=np.float64)),
    }
    out: dict[str, Any] = {name: _number(float(values[name])) for name in FIGURES}
    out.update(n=int(truth.size), positives=int(truth.sum()))
    return out


def _bags(features: MILFeatures) -> tuple[np.ndarray, list[np.ndarray]]:
    """Bag names in ``numpy.unique`` order and the row indices of each, in row order.

    One sort rather than a scan of all rows per bag, which RSNA's 20,000 scans would make slow.
    """
    names, inverse, counts = np.unique(features.bag_ids, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    return names, np.split(order, np.cumsum(counts)[:-1])


def _attention_scores(features: MILFeatures, scan_probability: np.ndarray, threshold: float):
    """Per-row slice scores and labels of the Att-CNN, computed bag by bag."""
    scores = np.zeros(len(features), dtype=np.float64)
    labels = np.zeros(len(features), dtype=bool)
    for rows in _bags(features)[1]:
        score, label = attention_slice_predictions(
            torch.as_tensor(scan_probability[rows[:1]], dtype=torch.float64),
            torch.as_tensor(features.weights[rows][None], dtype=torch.float64),
            threshold=threshold,
        )
        scores[rows], labels[rows] = score[0].numpy(), label[0].numpy()
    return scores, labels


def evaluate_mil(
    features: MILFeatures,
    pooling: str,
    class_name: str = "any",
    network_classes: Sequence[str] = ("any",),
    label_names: Sequence[str] = ICH_CLASSES,
    vgpmil: VGPMIL | None = None,
    variant: str = "raw",
    threshold: float = 0.5,
) -> dict:
    """Slice- and scan-level figures of the Att-CNN and, optionally, its VGPMIL.

    Args:
        features: the Att-CNN's slice rows on labelled scans (slice and scan labels needed).
        pooling: the network's pooling (``attention`` or ``gated``: ``AL``; ``mean``: ``nAL``).
        class_name: the class scored.
        network_classes: the classes of the network's scan outputs, in order.
        label_names: the label columns of ``features``.
        vgpmil: the VGPMIL fitted for ``class_name`` on this network's features, or ``None``.
        variant: its input (``raw`` or ``weighted``), as it was fitted.
        threshold: decision threshold of every probability and of the normalised attention.

    Returns:
        JSON-ready ``{"schema", "class", "n_scans", "n_slices", "threshold", "methods":
        {"<model>/<setting>": {"slice": figures, "scan": figures}}}``.

    Raises:
        ValueError: labels missing, or a class the network or labels lack.
    """
    if features.slice_labels is None or features.scan_labels is None:
        raise ValueError("evaluation needs slice and scan labels in the features")
    for where, names in (("network outputs", network_classes), ("labels", label_names)):
        if class_name not in names:
            raise ValueError(f"class {class_name!r} is not among the {where} {list(names)}")
    column = list(label_names).index(class_name)
    slice_truth = features.slice_labels[:, column] > 0.5
    names, groups = _bags(features)
    first = np.array([rows[0] for rows in groups])
    scan_truth = features.scan_labels[first, column] > 0.5
    scan_probability = features.scan_probability[:, list(network_classes).index(class_name)]

    methods: dict[str, dict] = {}
    setting = "nAL" if pooling == "mean" else "AL"
    scores, labels = _attention_scores(features, scan_probability, threshold)
    methods[f"Att-CNN/{setting}"] = {
        "slice": binary_figures(slice_truth, scores, labels),
        "scan": binary_figures(
            scan_truth, scan_probability[first], scan_probability[first] >= threshold
        ),
    }
    if vgpmil is not None:
        instance, bag = vgpmil.predict_proba(vgpmil_inputs(features, variant), features.bag_ids)
        name = paper_experiment(pooling if pooling != "gated" else "attention", variant)
        methods[f"Att-CNN+VGPMIL/{name or setting + '-' + variant}"] = {
            "slice": binary_figures(slice_truth, instance, instance >= threshold),
            "scan": binary_figures(scan_truth, bag, bag >= threshold),
        }
    return {
        "schema": MIL_SCHEMA,
        "class": class_name,
        "n_scans": len(names),
        "n_slices": len(features),
        "threshold": threshold,
        "methods": methods,
    }


def flat_mil_metrics(results: Mapping[str, Any]) -> dict[str, float]:
    """The defined figures of :func:`evaluate_mil` as flat MLflow metric names.

    ``Att-CNN/AL`` becomes ``attcnn_AL``, ``Att-CNN+VGPMIL/AL-nAw`` ``vgpmil_AL-nAw``; then the
    level and the figure: ``vgpmil_AL-nAw_scan_auc``.
    """
    flat = {}
    for method, levels in results["methods"].items():
        model, setting = method.split("/", 1)
        prefix = ("vgpmil_" if "VGPMIL" in model else "attcnn_") + setting
        for level in LEVELS:
            for figure in FIGURES:
                value = levels[level][figure]
                if value is not None:
                    flat[f"{prefix}_{level}_{figure}"] = float(value)
    return flat


def write_mil_results(results: Mapping[str, Any], output_dir: str | os.PathLike) -> Path:
    """Write ``mil_metrics.json`` and the one-run ``mil_table.md`` into ``output_dir``.

    Both are written atomically (:func:`ichbundles.bundle.report.write_atomic`): a failure
    leaves no half file.

    Returns:
        The path of ``mil_metrics.json``.
    """
    output_dir = Path(output_dir)
    write_atomic(output_dir / "mil_table.md", mil_table_markdown(summarise_mil_runs([results])))
    return write_atomic(output_dir / "mil_metrics.json", json.dumps(results, indent=2) + "\n")


def read_mil_results(path: str | os.PathLike) -> dict:
    """Read a ``mil_metrics.json``.

    Raises:
        ValueError: not a file of :data:`MIL_SCHEMA`.
    """
    try:
        results = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error.msg})") from None
    if not isinstance(results, dict) or results.get("schema") != MIL_SCHEMA:
        raise ValueError(f"{path}: not an {MIL_SCHEMA} file")
    return results


def summarise_mil_runs(runs: Sequence[Mapping[str, Any]]) -> dict:
    """Mean and sample standard deviation of each method's figures over several runs.

    A run holds one or more methods (a trained Att-CNN and its VGPMIL); runs of different
    settings (``AL`` and ``nAL``, say) sit side by side, and runs of the same method are seeds.

    Returns:
        ``{"class", "methods": {method: {level: {figure: {"mean", "std", "n"}}}}}``.

    Raises:
        ValueError: no runs, or runs of different classes.
    """
    if not runs:
        raise ValueError("no runs to summarise")
    classes = {run["class"] for run in runs}
    if len(classes) > 1:
        raise ValueError(f"runs score different classes: {sorted(classes)}")
    collected: dict[str, dict[str, dict[str, list[float]]]] = {}
    for run in runs:
        for method, levels in run["methods"].items():
            target = collected.setdefault(method, {lv: {f: [] for f in FIGURES} for lv in LEVELS})
            for level in LEVELS:
                for figure in FIGURES:
                    value = levels[level][figure]
                    if value is not None:
                        target[level][figure].append(float(value))

    def stat(values: list[float]) -> dict:
        v = np.asarray(values, dtype=np.float64)
        if v.size == 0:
            return {"mean": None, "std": None, "n": 0}
        return {
            "mean": float(v.mean()),
            "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "n": int(v.size),
        }

    return {
        "class": classes.pop(),
        "methods": {
            method: {lv: {f: stat(values[lv][f]) for f in FIGURES} for lv in LEVELS}
            for method, values in collected.items()
        },
    }


def _cell(summary: Mapping[str, Any]) -> str:
    if summary["mean"] is None:
        return "n/a"
    if summary["n"] > 1:
        return f"{summary['mean']:.3f} ± {summary['std']:.3f}"
    return f"{summary['mean']:.3f}"


def mil_table_markdown(summary: Mapping[str, Any]) -> str:
    """Table 1 of paper 000 in Markdown: a block per level, a column per model and setting.

    Columns follow :data:`METHODS` (those present), then any other method; a cell is the mean
    ± standard deviation over runs (the mean alone for one run).
    """
    present = summary["methods"]
    order = [f"{m}/{s}" for m, s in METHODS if f"{m}/{s}" in present]
    order += sorted(set(present) - set(order))
    runs = max((present[m]["scan"]["auc"]["n"] for m in order), default=0)
    lines = [f"Class: {summary['class']}; up to {runs} run(s) per column.", ""]
    for level in LEVELS:
        header = [f"{level}-level"] + [m.replace("/", " ") for m in order]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for figure in FIGURES:
            cells = [_cell(present[m][level][figure]) for m in order]
            lines.append("| " + " | ".join([figure, *cells]) + " |")
        lines.append("")
    return "\n".join(lines)
