"""Prediction reports (schema ``ichbundles.report/v1``) and the RSNA-style csv files.

One report JSON per series, named by its SeriesInstanceUID, and two csv files over all series:

- ``predictions.csv``: RSNA 2019 ``ID,Label`` rows ``ID_<SOPInstanceUID>_<class>`` per slice;
- ``scan_predictions.csv``: ``series_instance_uid,epidural,...,any`` per series.

Every file is written atomically (temporary file in the same folder, then rename), so a reader
never sees half a report. :class:`ReportWriter` does the same from a MONAI evaluator (the
bundle's ``inference.yaml``); :func:`ichbundles.bundle.predict.predict_series` uses these
functions directly.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from ichbundles.constants import ICH_CLASSES
from ichbundles.data.labels import rsna_id

__all__ = [
    "DEFAULT_VERSION",
    "PREDICTIONS_CSV",
    "REPORT_SCHEMA",
    "SCAN_PREDICTIONS_CSV",
    "SLICE_EXTRA_KEYS",
    "ReportWriter",
    "build_report",
    "file_sha256",
    "report_filename",
    "resolve_thresholds",
    "slice_ids",
    "validate_report",
    "write_atomic",
    "write_prediction_csvs",
    "write_prediction_tables",
    "write_report",
]

REPORT_SCHEMA = "ichbundles.report/v1"
#: Model version reported when the bundle has no ``configs/metadata.json``.
DEFAULT_VERSION = "0.1.0"
PREDICTIONS_CSV = "predictions.csv"
SCAN_PREDICTIONS_CSV = "scan_predictions.csv"

_TOP_KEYS = ("schema", "model", "series", "scan", "slices", "timing_s")
_MODEL_KEYS = ("bundle", "version", "checkpoint_sha256")
_SERIES_KEYS = ("study_instance_uid", "series_instance_uid", "n_slices", "source")
_SCAN_KEYS = ("probabilities", "positive", "thresholds")
_SLICE_KEYS = ("index", "sop_instance_uid", "z_mm", "probabilities")
#: Optional per-slice numbers a bundle may add after ``probabilities``, in this order:
#: ``attention``, the slice's pooling weight in its scan (attention MIL; they sum to 1).
SLICE_EXTRA_KEYS = ("attention",)
_TIMING_KEYS = ("read", "preprocess", "model", "total")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_thresholds(thresholds: float | Mapping[str, float] | None) -> dict[str, float]:
    """Per-class decision thresholds in ``ICH_CLASSES`` order.

    Args:
        thresholds: one value for every class, a mapping of some classes (the others 0.5), or
            ``None`` for 0.5 everywhere.

    Raises:
        ValueError: an unknown class or a threshold outside [0, 1].
    """
    if thresholds is None or isinstance(thresholds, int | float):
        value = 0.5 if thresholds is None else float(thresholds)
        resolved = dict.fromkeys(ICH_CLASSES, value)
    else:
        unknown = set(thresholds) - set(ICH_CLASSES)
        if unknown:
            raise ValueError(f"Unknown classes in thresholds: {sorted(unknown)}.")
        resolved = {c: float(thresholds.get(c, 0.5)) for c in ICH_CLASSES}
    bad = {c: t for c, t in resolved.items() if not 0.0 <= t <= 1.0}
    if bad:
        raise ValueError(f"Thresholds must lie in [0, 1]; got {bad}.")
    return resolved


def _by_class(values: Sequence[float]) -> dict[str, float]:
    return {c: float(v) for c, v in zip(ICH_CLASSES, values, strict=True)}


def build_report(
    slice_probabilities: np.ndarray | torch.Tensor,
    meta: Mapping[str, Any],
    *,
    bundle: str,
    version: str,
    checkpoint_sha256: str,
    source: str,
    thresholds: float | Mapping[str, float] | None = None,
    timing_s: Mapping[str, float] | None = None,
    slice_extras: Mapping[str, np.ndarray | torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Build one ``ichbundles.report/v1`` report.

    The scan probabilities are the maximum over slices of the slice probabilities, which equals
    the sigmoid of :func:`ichbundles.networks.scan_logits` (the sigmoid is monotonic).

    Args:
        slice_probabilities: ``(S, 6)`` sigmoid outputs of the series' slices, in slice order.
        meta: the ``image_meta`` of :class:`ichbundles.transforms.LoadCTSeriesd`
            (``sop_instance_uids``, ``z_mm``, ``series_instance_uid``, ``study_instance_uid``).
        bundle: bundle name.
        version: bundle version.
        checkpoint_sha256: SHA-256 of the checkpoint file.
        source: where the series came from (path or AE title).
        thresholds: see :func:`resolve_thresholds`.
        timing_s: ``read``, ``preprocess`` and ``model`` seconds; ``total`` is their sum unless
            given. Missing entries are 0.
        slice_extras: further ``(S,)`` numbers per slice by name, among
            :data:`SLICE_EXTRA_KEYS` (``attention``).

    Raises:
        ValueError: probabilities that are not ``(S, 6)`` with ``S >= 1`` or do not match the
            metadata's slice count; an unknown or mis-sized extra.
    """
    probs = torch.as_tensor(slice_probabilities).detach().float().cpu().numpy()
    uids = list(meta["sop_instance_uids"])
    z_mm = np.asarray(meta["z_mm"], dtype=np.float64).reshape(-1)
    if probs.ndim != 2 or probs.shape[1] != len(ICH_CLASSES) or probs.shape[0] < 1:
        raise ValueError(f"Expected (S, {len(ICH_CLASSES)}) probabilities, got {probs.shape}.")
    if not len(uids) == len(z_mm) == probs.shape[0]:
        raise ValueError(
            f"{probs.shape[0]} slices of probabilities but {len(uids)} SOPInstanceUIDs and "
            f"{len(z_mm)} positions."
        )
    extras = {}
    for key, values in (slice_extras or {}).items():
        if key not in SLICE_EXTRA_KEYS:
            raise ValueError(f"unknown slice extra {key!r}; known: {list(SLICE_EXTRA_KEYS)}")
        extras[key] = torch.as_tensor(values).detach().double().cpu().numpy().reshape(-1)
        if len(extras[key]) != probs.shape[0]:
            raise ValueError(f"{len(extras[key])} values of {key} for {probs.shape[0]} slices.")
    extras = {k: extras[k] for k in SLICE_EXTRA_KEYS if k in extras}
    limits = resolve_thresholds(thresholds)
    scan = _by_class(probs.max(axis=0))
    timing = {k: float((timing_s or {}).get(k, 0.0)) for k in _TIMING_KEYS[:3]}
    timing["total"] = float((timing_s or {}).get("total", sum(timing.values())))
    return {
        "schema": REPORT_SCHEMA,
        "model": {"bundle": bundle, "version": version, "checkpoint_sha256": checkpoint_sha256},
        "series": {
            "study_instance_uid": str(meta.get("study_instance_uid", "")),
            "series_instance_uid": str(meta["series_instance_uid"]),
            "n_slices": int(probs.shape[0]),
            "source": str(source),
        },
        "scan": {
            "probabilities": scan,
            "positive": {c: scan[c] >= limits[c] for c in ICH_CLASSES},
            "thresholds": limits,
        },
        "slices": [
            {
                "index": i,
                "sop_instance_uid": str(uids[i]),
                "z_mm": float(z_mm[i]),
                "probabilities": _by_class(probs[i]),
                **{key: float(values[i]) for key, values in extras.items()},
            }
            for i in range(probs.shape[0])
        ],
        "timing_s": timing,
    }


def _check_keys(obj: Any, keys: Sequence[str], where: str) -> None:
    if not isinstance(obj, Mapping) or tuple(obj) != tuple(keys):
        got = list(obj) if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(f"{where}: expected keys {list(keys)}, got {got}.")


def _check_probabilities(obj: Any, where: str) -> None:
    _check_keys(obj, ICH_CLASSES, where)
    for c, p in obj.items():
        if not isinstance(p, float) or not 0.0 <= p <= 1.0:
            raise ValueError(f"{where}.{c}: expected a probability in [0, 1], got {p!r}.")


def _check_number(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {value!r}.")


def validate_report(report: Mapping[str, Any]) -> None:
    """Check a report against schema ``ichbundles.report/v1`` (ARCHITECTURE.md).

    Checks the keys and their order, the types, probabilities in [0, 1], ``positive`` agreeing
    with the thresholds, the slice indices ``0..S-1``, ``n_slices`` and the scan probabilities
    being the maximum of the slice probabilities. Slices may carry the optional numbers of
    :data:`SLICE_EXTRA_KEYS` after ``probabilities`` (all slices the same ones; attention
    weights in [0, 1]).

    Raises:
        ValueError: the first problem found, naming its place in the report.
    """
    _check_keys(report, _TOP_KEYS, "report")
    if report["schema"] != REPORT_SCHEMA:
        raise ValueError(f"schema: expected {REPORT_SCHEMA!r}, got {report['schema']!r}.")
    _check_keys(report["model"], _MODEL_KEYS, "model")
    for key in _MODEL_KEYS:
        if not isinstance(report["model"][key], str) or not report["model"][key]:
            raise ValueError(f"model.{key}: expected a non-empty string.")
    series = report["series"]
    _check_keys(series, _SERIES_KEYS, "series")
    for key in ("study_instance_uid", "series_instance_uid", "source"):
        if not isinstance(series[key], str):
            raise ValueError(f"series.{key}: expected a string.")
    if not series["series_instance_uid"]:
        raise ValueError("series.series_instance_uid: empty.")
    scan = report["scan"]
    _check_keys(scan, _SCAN_KEYS, "scan")
    _check_probabilities(scan["probabilities"], "scan.probabilities")
    _check_probabilities(scan["thresholds"], "scan.thresholds")
    _check_keys(scan["positive"], ICH_CLASSES, "scan.positive")
    for c in ICH_CLASSES:
        expected = scan["probabilities"][c] >= scan["thresholds"][c]
        if scan["positive"][c] is not expected:
            raise ValueError(f"scan.positive.{c}: expected {expected} from the threshold.")
    slices = report["slices"]
    if not isinstance(slices, list) or not slices or len(slices) != series["n_slices"]:
        raise ValueError(f"slices: expected a list of series.n_slices = {series['n_slices']}.")
    extra_keys = tuple(
        k for k in SLICE_EXTRA_KEYS if isinstance(slices[0], Mapping) and k in slices[0]
    )
    for i, item in enumerate(slices):
        _check_keys(item, _SLICE_KEYS + extra_keys, f"slices[{i}]")
        if item["index"] != i or isinstance(item["index"], bool):
            raise ValueError(f"slices[{i}].index: expected {i}, got {item['index']!r}.")
        if not isinstance(item["sop_instance_uid"], str):
            raise ValueError(f"slices[{i}].sop_instance_uid: expected a string.")
        _check_number(item["z_mm"], f"slices[{i}].z_mm")
        _check_probabilities(item["probabilities"], f"slices[{i}].probabilities")
        for key in extra_keys:
            _check_number(item[key], f"slices[{i}].{key}")
            if key == "attention" and not 0.0 <= item[key] <= 1.0:
                raise ValueError(f"slices[{i}].attention: expected a weight in [0, 1].")
    for c in ICH_CLASSES:
        top = max(item["probabilities"][c] for item in slices)
        if not math.isclose(scan["probabilities"][c], top, rel_tol=1e-6, abs_tol=1e-7):
            raise ValueError(f"scan.probabilities.{c}: not the maximum over slices ({top}).")
    _check_keys(report["timing_s"], _TIMING_KEYS, "timing_s")
    for key, value in report["timing_s"].items():
        _check_number(value, f"timing_s.{key}")
        if value < 0:
            raise ValueError(f"timing_s.{key}: negative.")


def report_filename(report: Mapping[str, Any]) -> str:
    """``<SeriesInstanceUID>.json``: reports are named by UID, never by patient data.

    Raises:
        ValueError: a UID that is not a plain file name (``/``, ``..``, control characters).
    """
    uid = report["series"]["series_instance_uid"]
    if not uid or uid in {".", ".."} or any(ch in uid for ch in "/\\\0") or not uid.isprintable():
        raise ValueError(f"SeriesInstanceUID {uid!r} cannot name a file.")
    return f"{uid}.json"


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_report(report: Mapping[str, Any], output_dir: str | os.PathLike) -> Path:
    """Validate ``report`` and write it atomically as ``output_dir/<SeriesInstanceUID>.json``.

    Raises:
        ValueError: an invalid report (nothing is written).
    """
    validate_report(report)
    return write_atomic(Path(output_dir) / report_filename(report), json.dumps(report, indent=2))


def slice_ids(report: Mapping[str, Any]) -> list[str]:
    """Per-slice keys of the RSNA csv: the SOPInstanceUID, or ``<SeriesInstanceUID>.<index>``
    for slices without one (volumes such as NIfTI); never with ``_``, which separates the key
    from the class in ``ID_<key>_<class>``."""
    series_uid = report["series"]["series_instance_uid"]
    return [s["sop_instance_uid"] or f"{series_uid}.{s['index']}" for s in report["slices"]]


def write_prediction_tables(
    slices: Iterable[tuple[str, Sequence[float]]],
    scans: Iterable[tuple[str, Sequence[float]]],
    output_dir: str | os.PathLike,
) -> tuple[Path, Path]:
    """Write ``predictions.csv`` (RSNA ``ID,Label``: slices x 6 rows) and
    ``scan_predictions.csv`` (``series_instance_uid,epidural,...,any``), each atomically.

    Args:
        slices: ``(slice key, probabilities in ICH_CLASSES order)``; the key is a
            SOPInstanceUID (see :func:`slice_ids`).
        scans: ``(SeriesInstanceUID, probabilities in ICH_CLASSES order)``.
        output_dir: the folder.

    Returns:
        The two paths.
    """
    slice_text = io.StringIO()
    rows = csv.writer(slice_text, lineterminator="\n")
    rows.writerow(["ID", "Label"])
    for key, probs in slices:
        rows.writerows(
            [rsna_id(key, c), repr(float(p))] for c, p in zip(ICH_CLASSES, probs, strict=True)
        )
    scan_text = io.StringIO()
    scan_rows = csv.writer(scan_text, lineterminator="\n")
    scan_rows.writerow(["series_instance_uid", *ICH_CLASSES])
    scan_rows.writerows([uid, *(repr(float(p)) for p in probs)] for uid, probs in scans)
    output_dir = Path(output_dir)
    return (
        write_atomic(output_dir / PREDICTIONS_CSV, slice_text.getvalue()),
        write_atomic(output_dir / SCAN_PREDICTIONS_CSV, scan_text.getvalue()),
    )


def write_prediction_csvs(
    reports: Sequence[Mapping[str, Any]], output_dir: str | os.PathLike
) -> tuple[Path, Path]:
    """The prediction tables (see :func:`write_prediction_tables`) of a set of reports."""
    slices = [
        (key, [item["probabilities"][c] for c in ICH_CLASSES])
        for report in reports
        for key, item in zip(slice_ids(report), report["slices"], strict=True)
    ]
    scans = [
        (
            report["series"]["series_instance_uid"],
            [report["scan"]["probabilities"][c] for c in ICH_CLASSES],
        )
        for report in reports
    ]
    return write_prediction_tables(slices, scans, output_dir)


class ReportWriter:
    """Ignite handler: one report JSON per scan an evaluator predicts, and the csv files.

    Attach to a MONAI ``SupervisedEvaluator`` created with ``decollate=False`` whose
    ``postprocessing`` applies the sigmoid to ``pred`` and whose batches come from
    :func:`ichbundles.engines.collate_scans`, with ``mask``, ``image_meta``, the input path
    (``source_key``) and the ``timing_s`` of
    :class:`ichbundles.bundle.predict.TimedPreprocessing`. The model time of a batch is shared
    equally among its scans. Per-slice numbers of :data:`SLICE_EXTRA_KEYS` found in the output
    (``attention``, ``(B, S)``) go into the reports. The csv files are written when the run
    completes.

    Args:
        output_dir: folder of the reports and csv files.
        bundle: bundle name.
        version: bundle version.
        checkpoint: checkpoint file, for its SHA-256.
        thresholds: see :func:`resolve_thresholds`.
        source_key: item key of the input path.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        bundle: str,
        version: str,
        checkpoint: str | os.PathLike,
        thresholds: float | Mapping[str, float] | None = None,
        source_key: str = "source",
    ) -> None:
        self.output_dir = Path(output_dir)
        self.bundle = bundle
        self.version = version
        self.checkpoint = checkpoint
        self.thresholds = resolve_thresholds(thresholds)
        self.source_key = source_key
        self.reports: list[dict[str, Any]] = []
        self._sha256: str | None = None
        self._started = 0.0

    def attach(self, engine: Engine) -> None:
        """Register the handler's events on ``engine``."""
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_STARTED, self._start_clock)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._write_batch)
        engine.add_event_handler(Events.COMPLETED, self._write_csvs)

    def _reset(self, engine: Engine) -> None:
        self.reports = []
        self._sha256 = file_sha256(self.checkpoint)

    def _start_clock(self, engine: Engine) -> None:
        self._started = time.perf_counter()

    def _write_batch(self, engine: Engine) -> None:
        batch, output = engine.state.batch, engine.state.output
        masks = torch.as_tensor(batch["mask"]).bool().cpu()
        predictions = torch.as_tensor(output["pred"]).detach().cpu()
        extras = {
            key: torch.as_tensor(output[key]).detach().cpu()
            for key in SLICE_EXTRA_KEYS
            if key in output
        }
        model_s = (time.perf_counter() - self._started) / len(masks)
        for b, valid in enumerate(masks):
            timing = {**batch["timing_s"][b], "model": model_s}
            timing["total"] = sum(timing.values())
            report = build_report(
                predictions[b][valid],
                batch["image_meta"][b],
                bundle=self.bundle,
                version=self.version,
                checkpoint_sha256=self._sha256 or file_sha256(self.checkpoint),
                source=str(batch[self.source_key][b]),
                thresholds=self.thresholds,
                timing_s=timing,
                slice_extras={key: values[b][valid] for key, values in extras.items()},
            )
            write_report(report, self.output_dir)
            self.reports.append(report)

    def _write_csvs(self, engine: Engine) -> None:
        write_prediction_csvs(self.reports, self.output_dir)
