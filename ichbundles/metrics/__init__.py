"""Evaluation: weighted log loss, AUC with CIs, threshold statistics with Wilson CIs,
calibration, paper-style reports, and the same figures as MONAI/Ignite metrics."""

from __future__ import annotations

from ichbundles.metrics.calibration import expected_calibration_error, reliability
from ichbundles.metrics.evaluate import (
    SCHEMA,
    Evaluation,
    evaluate_arrays,
    evaluate_files,
    summarise_runs,
)
from ichbundles.metrics.loss import EPS, class_log_loss, weighted_log_loss
from ichbundles.metrics.predictions import (
    PredictionError,
    aggregate_to_scans,
    read_predictions,
    read_scan_predictions,
    read_slice_map,
    read_slice_predictions,
)
from ichbundles.metrics.report import format_table, render_markdown, write_outputs
from ichbundles.metrics.roc import (
    bootstrap_auc,
    bootstrap_counts,
    delong_ci,
    percentile_ci,
    roc_auc,
    roc_curve,
)
from ichbundles.metrics.threshold import (
    STAT_NAMES,
    binary_stats,
    confusion_counts,
    stats_from_counts,
    threshold_for_sensitivity,
    wilson_ci,
)

# The Ignite metrics import MONAI and torch (seconds); load them on first use so that the
# ``evaluate`` command and the numpy API stay quick to import.
_IGNITE = ("MeanAUC", "MeanAUCMetric", "WeightedLogLoss", "WeightedLogLossMetric")


def __getattr__(name: str):
    if name in _IGNITE:
        from ichbundles.metrics import ignite

        return getattr(ignite, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EPS",
    "SCHEMA",
    "STAT_NAMES",
    "Evaluation",
    "MeanAUC",
    "MeanAUCMetric",
    "PredictionError",
    "WeightedLogLoss",
    "WeightedLogLossMetric",
    "aggregate_to_scans",
    "binary_stats",
    "bootstrap_auc",
    "bootstrap_counts",
    "class_log_loss",
    "confusion_counts",
    "delong_ci",
    "evaluate_arrays",
    "evaluate_files",
    "expected_calibration_error",
    "format_table",
    "percentile_ci",
    "read_predictions",
    "read_scan_predictions",
    "read_slice_map",
    "read_slice_predictions",
    "reliability",
    "render_markdown",
    "roc_auc",
    "roc_curve",
    "stats_from_counts",
    "summarise_runs",
    "threshold_for_sensitivity",
    "weighted_log_loss",
    "wilson_ci",
    "write_outputs",
]
