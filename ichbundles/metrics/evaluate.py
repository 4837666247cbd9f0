"""Orchestration: prediction and label files -> the ``metrics.json`` dictionary.

Every figure of a level comes from :func:`evaluate_arrays`; :func:`evaluate_files` reads and
matches files, aggregates slices to scans where the labels are per scan, and summarises several
runs as mean and standard deviation.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ichbundles.constants import ICH_CLASSES, NUM_CLASSES
from ichbundles.data.labels import read_cq500_reads, read_rsna_labels, read_scan_labels
from ichbundles.metrics.calibration import expected_calibration_error, reliability
from ichbundles.metrics.loss import class_log_loss, weighted_log_loss
from ichbundles.metrics.predictions import (
    PredictionError,
    aggregate_to_scans,
    read_predictions,
    read_slice_map,
)
from ichbundles.metrics.roc import (
    bootstrap_auc,
    bootstrap_counts,
    delong_ci,
    percentile_ci,
    roc_auc,
)
from ichbundles.metrics.threshold import (
    STAT_NAMES,
    binary_stats,
    confusion_counts,
    stats_from_counts,
    threshold_for_sensitivity,
)

__all__ = [
    "SCHEMA",
    "SLICE_CI_NOTE",
    "Evaluation",
    "evaluate_arrays",
    "evaluate_files",
    "summarise_runs",
]

logger = logging.getLogger(__name__)

SCHEMA = "ichbundles.metrics/v1"
LEVELS: tuple[str, ...] = ("slice_level", "scan_level")

#: Said (metrics.json ``auc_ci_method``, report.md, a warning) when slice-level CIs resample
#: slices: slices of one scan are correlated, so these CIs are too narrow.
SLICE_CI_NOTE = (
    "slice-level CIs treat slices as independent (no slice map) and are too narrow; give "
    "--slice-map (e.g. the 'ichbundles index' parquet) to resample whole scans"
)

#: Above this many (samples x resamples) the bootstrap is too slow and memory-hungry (RSNA slice
#: level: 750 k x 1000); AUC CIs then come from the clustered DeLong variance instead.
BOOTSTRAP_MAX_CELLS = 200_000_000


@dataclass
class Evaluation:
    """Result of :func:`evaluate_files`.

    Attributes:
        metrics: the ``metrics.json`` dictionary.
        arrays: per level, ``(y_true, y_prob)`` of each run, for plots.
    """

    metrics: dict
    arrays: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)


def _num(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _pair(ci: Sequence[float]) -> list[float] | None:
    return None if any(not math.isfinite(v) for v in ci) else [float(v) for v in ci]


def _auc_reason(n_pos: int, n_neg: int) -> str:
    which = "positive" if n_pos == 0 else "negative"
    return f"AUC undefined: no {which} cases (only one label value)"


def evaluate_arrays(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    *,
    thresholds: Mapping[str, float] | None = None,
    target_sensitivity: float | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    clusters: np.ndarray | None = None,
    n_bins: int = 10,
) -> dict:
    """All figures of one level (slice or scan) for the six classes.

    Args:
        y_true: ``(N, 6)`` labels in ``ICH_CLASSES`` order.
        y_prob: ``(N, 6)`` probabilities.
        thresholds: per-class decision thresholds (``prob >= threshold`` is positive); 0.5 for
            classes not given.
        target_sensitivity: if given, each class's threshold is the highest one reaching it.
        n_bootstrap: seeded resamples for the AUC and F1 CIs (0: DeLong AUC CIs, no F1 CI).
        seed: bootstrap seed.
        clusters: ``(N,)`` scan of each slice; resampling and DeLong variance treat a scan as
            one unit. ``None``: each row is a unit.
        n_bins: calibration bins.

    Returns:
        JSON-ready dictionary: ``n``, ``weighted_log_loss``, ``mean_auc``(+``_ci``),
        ``per_class`` and the CI methods; an undefined figure is ``None`` with a ``*_reason``.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_prob, dtype=np.float64)
    thresholds = dict(thresholds or {})
    unknown = set(thresholds) - set(ICH_CLASSES)
    if unknown:
        raise ValueError(f"unknown classes in thresholds: {', '.join(sorted(unknown))}")
    if clusters is not None:
        clusters = np.unique(np.asarray(clusters), return_inverse=True)[1]
    n_units = len(y) if clusters is None else int(clusters.max()) + 1

    cut = np.empty(NUM_CLASSES)
    for c, cls in enumerate(ICH_CLASSES):
        if target_sensitivity is not None:
            cut[c] = threshold_for_sensitivity(y[:, c], p[:, c], target_sensitivity)
        else:
            cut[c] = thresholds.get(cls, 0.5)
    decisions = p >= np.where(np.isnan(cut), np.inf, cut)
    counts = confusion_counts(y, decisions)
    aucs = roc_auc(y, p)
    losses = class_log_loss(y, p)

    use_bootstrap = n_bootstrap > 0 and len(y) * n_bootstrap <= BOOTSTRAP_MAX_CELLS
    boot_auc = boot_f1 = None
    if use_bootstrap:
        boot_auc = bootstrap_auc(y, p, n_bootstrap, seed, clusters)
        boot_f1 = _bootstrap_f1(y, decisions, n_bootstrap, seed, clusters, n_units)
        unit = "rows" if clusters is None else "scans"
        auc_method = f"bootstrap percentile, {n_bootstrap} resamples of {unit}, seed {seed}"
    else:
        auc_method = "DeLong" + (" clustered by scan (Obuchowski)" if clusters is not None else "")

    per_class: dict[str, dict] = {}
    for c, cls in enumerate(ICH_CLASSES):
        n_pos = int(y[:, c].sum())
        entry: dict = {"n_positive": n_pos, "n_negative": len(y) - n_pos}
        if math.isnan(aucs[c]):
            entry.update(auc=None, auc_ci=None, auc_reason=_auc_reason(n_pos, len(y) - n_pos))
            entry["auc_ci_reason"] = entry["auc_reason"]
        else:
            entry["auc"] = float(aucs[c])
            if boot_auc is not None:
                ci = percentile_ci(boot_auc[:, c])[:, 0]
            else:
                ci = delong_ci(y[:, c], p[:, c], clusters)[1:]
            entry["auc_ci"] = _pair(ci)
            if entry["auc_ci"] is None:
                entry["auc_ci_reason"] = "no resample held both label values"
        stats = binary_stats(counts[c])
        for name in STAT_NAMES:
            value, ci = stats[name]["value"], stats[name]["ci"]
            if name == "f1" and boot_f1 is not None:
                ci = percentile_ci(boot_f1[:, c])[:, 0]
            entry[name] = _num(value)
            entry[f"{name}_ci"] = _pair(ci)
            if entry[name] is None:
                entry[f"{name}_reason"] = _stat_reason(name)
                entry[f"{name}_ci_reason"] = entry[f"{name}_reason"]
            elif entry[f"{name}_ci"] is None:
                entry[f"{name}_ci_reason"] = (
                    "needs the bootstrap (--bootstrap N; F1 is not a proportion)"
                    if boot_f1 is None
                    else "no resample defined it"
                )
        entry["threshold"] = _num(cut[c])
        if entry["threshold"] is None:
            entry["threshold_reason"] = "no positive cases to reach the target sensitivity"
        tp, fp, tn, fn = (int(v) for v in counts[c])
        entry["confusion"] = {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
        entry["log_loss"] = float(losses[c])
        entry["ece"] = expected_calibration_error(y[:, c], p[:, c], n_bins)
        table = reliability(y[:, c], p[:, c], n_bins)
        entry["reliability"] = {
            "edges": table["edges"].tolist(),
            "count": table["count"].astype(int).tolist(),
            "mean_prob": [_num(v) for v in table["mean_prob"]],
            "frequency": [_num(v) for v in table["frequency"]],
        }
        per_class[cls] = entry

    defined = ~np.isnan(aucs)
    level: dict = {
        "n": len(y),
        "n_units": n_units,
        "weighted_log_loss": weighted_log_loss(y, p),
        "mean_auc": float(aucs[defined].mean()) if defined.any() else None,
        "mean_auc_over": [cls for cls, d in zip(ICH_CLASSES, defined, strict=True) if d],
        "auc_ci_method": auc_method,
        "proportion_ci_method": "Wilson score",
        "threshold_rule": (
            f"highest threshold reaching sensitivity {target_sensitivity}"
            if target_sensitivity is not None
            else "fixed (probability >= threshold is positive)"
        ),
        "per_class": per_class,
    }
    if level["mean_auc"] is None:
        level["mean_auc_reason"] = "AUC undefined for every class"
    if boot_auc is not None and defined.any():
        means = boot_auc[:, defined].mean(axis=1)  # NaN when a resample lost a class
        level["mean_auc_ci"] = _pair(percentile_ci(means)[:, 0])
    else:
        level["mean_auc_ci"] = None
        level["mean_auc_ci_reason"] = "needs the bootstrap and at least one defined AUC"
    return level


def _stat_reason(name: str) -> str:
    return {
        "sensitivity": "undefined: no positive cases",
        "specificity": "undefined: no negative cases",
        "precision": "undefined: no positive decisions",
        "npv": "undefined: no negative decisions",
        "accuracy": "undefined: no cases",
        "f1": "undefined: no positive cases and no positive decisions",
    }[name]


def _bootstrap_f1(
    y: np.ndarray,
    decisions: np.ndarray,
    n_boot: int,
    seed: int,
    clusters: np.ndarray | None,
    n_units: int,
) -> np.ndarray:
    """F1 of each class on the same resamples as :func:`bootstrap_auc` (``(B, C)``)."""
    cells = np.stack(
        [y * decisions, (1 - y) * decisions, (1 - y) * ~decisions, y * ~decisions], axis=-1
    ).reshape(len(y), -1)
    if clusters is not None:  # per-scan counts: a resample weights whole scans
        cells = np.stack(
            [np.bincount(clusters, weights=col, minlength=n_units) for col in cells.T], axis=1
        )
    rows = [counts @ cells for counts in bootstrap_counts(n_units, n_boot, seed, len(y))]
    resampled = np.concatenate(rows).reshape(n_boot, NUM_CLASSES, 4)
    return stats_from_counts(resampled)["f1"]


def summarise_runs(levels: Sequence[dict]) -> dict:
    """Mean and sample standard deviation of every number of several runs' level dicts.

    Returns:
        ``{"n_runs", "weighted_log_loss": {"mean", "std"}, "mean_auc": {...},
        "per_class": {cls: {figure: {"mean", "std"}}}}``; figures undefined in some run are
        averaged over the runs that define them (``n`` says how many).
    """

    def stat(values: list) -> dict:
        v = np.array([x for x in values if x is not None], dtype=np.float64)
        if v.size == 0:
            return {"mean": None, "std": None, "n": 0}
        std = float(v.std(ddof=1)) if v.size > 1 else 0.0
        return {"mean": float(v.mean()), "std": std, "n": int(v.size)}

    figures = ("auc", *STAT_NAMES, "ece", "log_loss")
    return {
        "n_runs": len(levels),
        "weighted_log_loss": stat([lv["weighted_log_loss"] for lv in levels]),
        "mean_auc": stat([lv["mean_auc"] for lv in levels]),
        "per_class": {
            cls: {f: stat([lv["per_class"][cls][f] for lv in levels]) for f in figures}
            for cls in ICH_CLASSES
        },
    }


def _align(
    pred: pd.DataFrame, labels: pd.DataFrame, pred_path: os.PathLike | str, what: str
) -> np.ndarray:
    """Prediction rows in label order; every prediction must be labelled and vice versa."""
    position = pred.index.get_indexer(labels.index)
    missing = position < 0
    if missing.any():
        first = labels.index[int(np.argmax(missing))]
        raise PredictionError(
            pred_path,
            f"{int(missing.sum())} labelled {what} have no prediction, e.g. {first!r}",
        )
    if len(pred) > len(labels):
        extra = ~pred.index.isin(labels.index)
        first = pred.index[int(np.argmax(extra))]
        raise PredictionError(
            pred_path, f"{int(extra.sum())} predicted {what} have no label, e.g. {first!r}"
        )
    return pred.to_numpy(dtype=np.float64)[position]


def evaluate_files(
    predictions: Sequence[str | os.PathLike],
    *,
    labels: str | os.PathLike | None = None,
    reads: str | os.PathLike | None = None,
    scan_labels: str | os.PathLike | None = None,
    slice_map: str | os.PathLike | None = None,
    **options,
) -> Evaluation:
    """Score one or more prediction files against one label file.

    Exactly one of ``labels`` (RSNA slice labels), ``reads`` (CQ500 majority) or ``scan_labels``
    (per-scan csv) is given. Slice predictions are scored per slice against RSNA labels, and per
    scan (maximum over slices) when ``slice_map`` says which scan each slice is in; against scan
    labels they need ``slice_map``. ``options`` go to :func:`evaluate_arrays`.

    Raises:
        PredictionError: unreadable predictions, or predictions and labels that do not match.
        LabelError: unreadable labels.
    """
    given = [x for x in (labels, reads, scan_labels) if x is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of labels, reads or scan_labels")
    if not predictions:
        raise ValueError("give at least one prediction file")
    t0 = time.perf_counter()
    if labels is not None:
        truth, label_level = read_rsna_labels(labels), "slice"
    elif reads is not None:
        truth, label_level = read_cq500_reads(reads), "scan"
    else:
        truth, label_level = read_scan_labels(scan_labels), "scan"
    label_path = given[0]
    key = truth.index.name if label_level == "scan" else "series_instance_uid"
    mapping = read_slice_map(slice_map, key) if slice_map is not None else None
    parse_s = time.perf_counter() - t0

    if label_level == "slice" and mapping is None:
        logger.warning("%s", SLICE_CI_NOTE)

    runs: list[dict] = []
    arrays: dict[str, list] = {}
    metric_s = 0.0
    for path in predictions:
        t0 = time.perf_counter()
        layout, pred = read_predictions(path)
        parse_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        pairs = _level_data(layout, pred, truth, label_level, mapping, path, label_path)
        run: dict = {"predictions": str(path), "layout": layout}
        for level, (y, p, clusters) in pairs.items():
            run[level] = evaluate_arrays(y, p, clusters=clusters, **options)
            if level == "slice_level" and clusters is None:
                run[level]["auc_ci_method"] += f"; {SLICE_CI_NOTE}"
            arrays.setdefault(level, []).append((y, p))
        metric_s += time.perf_counter() - t0
        runs.append(run)

    metrics: dict = {
        "schema": SCHEMA,
        "classes": list(ICH_CLASSES),
        "labels": str(label_path),
        "slice_map": None if slice_map is None else str(slice_map),
        "predictions": [str(p) for p in predictions],
        "options": {k: v for k, v in options.items() if k != "thresholds"}
        | {"thresholds": dict(options.get("thresholds") or {})},
    }
    for level in LEVELS:
        if level in runs[0]:
            metrics[level] = runs[0][level]
    if len(runs) > 1:
        metrics["runs"] = runs
        metrics["summary"] = {
            level: summarise_runs([r[level] for r in runs]) for level in LEVELS if level in runs[0]
        }
        for level in metrics["summary"]:
            metrics[level] = dict(metrics[level], note="figures of the first run; see summary")
    metrics["timing_s"] = {"parse": round(parse_s, 3), "metrics": round(metric_s, 3)}
    return Evaluation(metrics=metrics, arrays=arrays)


def _level_data(
    layout: str,
    pred: pd.DataFrame,
    truth: pd.DataFrame,
    label_level: str,
    mapping: pd.Series | None,
    path: str | os.PathLike,
    label_path: str | os.PathLike,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """``{level: (y_true, y_prob, clusters)}`` for every level these files can be scored at."""
    out: dict = {}
    y_all = truth.to_numpy(dtype=np.float64)
    if label_level == "slice":
        if layout != "slice":
            raise PredictionError(path, "per-scan predictions cannot be scored on slice labels")
        probs = _align(pred, truth, path, "slices")
        clusters = None
        if mapping is not None:
            scan_of = mapping.reindex(truth.index)
            if scan_of.isna().any():
                first = truth.index[int(np.argmax(scan_of.isna().to_numpy()))]
                raise PredictionError(label_path, f"labelled slice {first!r} is not in the map")
            clusters = pd.factorize(scan_of)[0]
        out["slice_level"] = (y_all, probs, clusters)
        if mapping is not None:
            scan_truth = aggregate_to_scans(truth, mapping, label_path)
            scan_pred = aggregate_to_scans(pred, mapping, path)
            y_scan = scan_truth.to_numpy(dtype=np.float64)
            out["scan_level"] = (y_scan, _align(scan_pred, scan_truth, path, "scans"), None)
        return out
    if layout == "slice":
        if mapping is None:
            raise PredictionError(
                path, "slice predictions against scan labels need a slice map (--slice-map)"
            )
        pred = aggregate_to_scans(pred, mapping, path)
    out["scan_level"] = (y_all, _align(pred, truth, path, "scans"), None)
    return out
