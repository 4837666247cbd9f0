"""A model on a synthetic held-out set: predictions, scores with CIs, and one scan pictured.

What ``ichbundles demo`` shows of a model, usable on its own::

    from ichbundles.bundle.showcase import positive_example, scan_picture, score_held_out

    score = score_held_out("ich_cnn_lstm", "model.pt", "data/test", "out")  # ichbundles synth
    record, report = positive_example(score, "data/test/manifest.json")
    scan_picture(report, record, size=256, path="out/scan.png")

The figures come from :mod:`ichbundles.metrics` (``metrics.json``, ``report.md``, ROC and
reliability plots); the scan picture re-renders the phantom from the seed its manifest records,
so the lesion outlines are the generator's truth, not a reading of the image.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ichbundles.bundle.predict import PredictionResult, predict_series
from ichbundles.bundle.report import slice_ids
from ichbundles.constants import SUBTYPES
from ichbundles.data.synthetic import SyntheticScan, make_scan
from ichbundles.data.synthetic.preview import BRAIN_WINDOW
from ichbundles.metrics.evaluate import Evaluation, evaluate_files
from ichbundles.metrics.report import write_outputs

__all__ = [
    "HeldOutScore",
    "positive_example",
    "rendered_index",
    "scan_picture",
    "score_held_out",
]


@dataclass
class HeldOutScore:
    """A model's predictions of a synthetic held-out set and their evaluation.

    Attributes:
        results: one prediction result per series, in series name order.
        evaluation: slice- and scan-level figures (``evaluation.metrics`` is ``metrics.json``).
        predictions: folder of the reports and prediction csv files.
        evaluation_dir: folder of ``metrics.json``, ``report.md`` and the ROC and reliability
            PNGs.
    """

    results: list[PredictionResult]
    evaluation: Evaluation
    predictions: Path
    evaluation_dir: Path

    @property
    def scan_any(self) -> dict[str, Any]:
        """Scan-level figures of "any" (``auc``, ``auc_ci``, ``n_positive``, ...)."""
        return self.evaluation.metrics["scan_level"]["per_class"]["any"]

    @property
    def metrics_json(self) -> Path:
        """The ``metrics.json`` file."""
        return self.evaluation_dir / "metrics.json"

    @property
    def roc_png(self) -> Path:
        """The scan-level ROC plot."""
        return self.evaluation_dir / "roc_scan_level.png"


def _write_slice_map(reports: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Which series each predicted slice belongs to, for scan-level scores from slice ones."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sop_instance_uid", "series_instance_uid"])
        for report in reports:
            uid = report["series"]["series_instance_uid"]
            writer.writerows((key, uid) for key in slice_ids(report))
    return path


def score_held_out(
    bundle: str | os.PathLike,
    checkpoint: str | os.PathLike | None,
    data: str | os.PathLike,
    output: str | os.PathLike,
) -> HeldOutScore:
    """Predict every series of a synthetic dataset and score it against its labels.

    Args:
        bundle: bundle name under ``bundles/`` or bundle folder.
        checkpoint: the model (it brings its settings), or ``None`` for the bundle's shipped one.
        data: a folder written by ``ichbundles synth`` (``dicom/<scan>/``, ``labels.csv``).
        output: folder for ``predictions/`` and ``evaluation/``.

    Raises:
        RuntimeError: a series could not be predicted (one line: how many, and the first error);
            scores of a partly predicted set would not be the set's.
    """
    data, output = Path(data), Path(output)
    series = sorted(p for p in (data / "dicom").iterdir() if p.is_dir())
    predictions = output / "predictions"
    results = predict_series(bundle, checkpoint, series, predictions)
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(results)} series failed: {failed[0].error}")
    reports = [r.report for r in results]
    evaluation = evaluate_files(
        [predictions / "predictions.csv"],
        labels=data / "labels.csv",
        slice_map=_write_slice_map(reports, predictions / "slice_map.csv"),
    )
    evaluation_dir = output / "evaluation"
    write_outputs(evaluation, evaluation_dir)
    return HeldOutScore(results, evaluation, predictions, evaluation_dir)


def positive_example(
    score: HeldOutScore, manifest: str | os.PathLike
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first scan with a hemorrhage, in manifest order: its manifest record and report.

    The first rather than the best predicted one, so the picture is not chosen by the model.

    Raises:
        ValueError: no predicted scan of the manifest has a hemorrhage.
    """
    reports = {r.report["series"]["series_instance_uid"]: r.report for r in score.results}
    for record in json.loads(Path(manifest).read_text())["scans"]:
        if record["scan_labels"][-1] and record["series_instance_uid"] in reports:
            return record, reports[record["series_instance_uid"]]
    raise ValueError(f"{manifest}: no predicted scan has a hemorrhage")


def rendered_index(scan: SyntheticScan, z_mm: Sequence[float]) -> np.ndarray:
    """Index of the rendered slice of ``scan`` at each written slice's position.

    Written slices are the rendered ones in order unless archive quirks dropped some (``gap``)
    or added some (``duplicate_slice``, dropped again by the reader), so they are matched by
    position (along the slice normal: z for the phantom's axial slices), not by count.

    Args:
        scan: the phantom re-rendered from its seed.
        z_mm: the positions of the slices a reader found (a report's ``slices[i].z_mm``).

    Raises:
        ValueError: a written slice lies farther than half a slice from every rendered one.
    """
    z_mm = np.asarray(z_mm, dtype=np.float64)
    distance = np.abs(z_mm[:, None] - scan.positions[None, :, 2])
    index = distance.argmin(axis=1)
    worst = float(distance[np.arange(len(z_mm)), index].max())
    if worst > scan.spacing[0] / 2:
        raise ValueError(f"a written slice lies {worst:.2f} mm from every rendered slice")
    return index


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``(first, last)`` index of each run of true values."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))


def scan_picture(
    report: Mapping[str, Any],
    record: Mapping[str, Any],
    size: int,
    path: str | os.PathLike,
    tiles: int = 4,
) -> Path:
    """Picture one predicted phantom: its most suspicious slices and its per-slice curve.

    Top row: the ``tiles`` slices with the highest probability of "any" (in slice order), brain
    window, each hemorrhage outlined from the phantom's truth. Bottom: the probability of
    "any" per slice, the slices that truly hold blood shaded.

    Args:
        report: the scan's ``ichbundles.report/v1`` report.
        record: its entry in the dataset's ``manifest.json`` (``seed``, ``thin``, ``scan_id``).
        size: the dataset's image size (the manifest's ``arguments.size``).
        path: PNG to write.
        tiles: slices to show.

    Returns:
        ``path``.

    Raises:
        ValueError: a tilted or stressed scan (rendered differently from its seed alone), or a
            report whose
            slices do not lie on the re-rendered scan's.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "tilt" in record.get("quirks", ()):
        raise ValueError(f"{record['scan_id']}: tilted scans are not re-rendered for pictures")
    if "factors" in record:  # a robustness set: its stress is not in the scan's record
        raise ValueError(f"{record['scan_id']}: stressed scans are not re-rendered for pictures")
    scan = make_scan(int(record["seed"]), size, bool(record["thin"]))
    rendered = rendered_index(scan, [s["z_mm"] for s in report["slices"]])
    p_any = np.array([s["probabilities"]["any"] for s in report["slices"]])
    truth = scan.slice_labels[rendered]
    shown = np.sort(np.argsort(-p_any, kind="stable")[:tiles])

    fig = plt.figure(figsize=(3 * len(shown), 6.2), layout="constrained")
    grid = fig.add_gridspec(2, len(shown), height_ratios=(3, 1.8))
    level, width = BRAIN_WINDOW
    for column, i in enumerate(shown):
        ax = fig.add_subplot(grid[0, column])
        ax.imshow(scan.hu[rendered[i]], cmap="gray", vmin=level - width / 2, vmax=level + width / 2)
        blood = scan.lesion_mask[rendered[i]] > 0
        if blood.any():
            ax.contour(blood, levels=[0.5], colors="red", linewidths=0.8)
        bleeds = [SUBTYPES[k] for k in np.flatnonzero(truth[i, : len(SUBTYPES)])]
        ax.set_title(f"slice {i}: p(any) {p_any[i]:.2f}\n{', '.join(bleeds) or 'no bleed'}", size=9)
        ax.set_axis_off()

    ax = fig.add_subplot(grid[1, :])
    for k, (first, last) in enumerate(_runs(truth[:, -1] > 0)):
        label = "slices with blood (truth)" if k == 0 else None
        ax.axvspan(first - 0.5, last + 0.5, color="red", alpha=0.15, lw=0, label=label)
    ax.plot(p_any, marker=".", lw=1, label='p("any")')
    ax.scatter(shown, p_any[shown], s=50, facecolors="none", edgecolors="k", label="shown above")
    threshold = report["scan"]["thresholds"]["any"]
    ax.axhline(threshold, ls="--", c="grey", lw=0.8, label=f"threshold {threshold:g}")
    ax.set(
        xlabel="slice index (inferior to superior)",
        ylabel='probability of "any"',
        xlim=(-0.5, len(p_any) - 0.5),
        ylim=(0, 1.02),
    )
    ax.legend(loc="upper left", fontsize=8)
    types = sorted({les["type"] for les in record.get("lesions", ()) if les["slices"]})
    scan_p = report["scan"]["probabilities"]["any"]
    fig.suptitle(f"{record['scan_id']}: {', '.join(types)}; scan p(any) {scan_p:.2f}", size=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
