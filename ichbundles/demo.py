"""``ichbundles demo``: synthetic data, a short CPU training, evaluation and one prediction.

Everything a new user needs to see the whole product work in minutes on a laptop-class CPU: a
small synthetic training set and a held-out set from another seed, the ``ich_cnn_lstm`` bundle
trained in its CPU configuration (tracked in MLflow), the held-out set predicted and scored,
and where every output is.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from ichbundles.bundle.predict import predict_series
from ichbundles.bundle.train import parse_overrides, train_bundle
from ichbundles.data.synthetic import generate_dataset
from ichbundles.metrics.evaluate import evaluate_files
from ichbundles.metrics.report import format_table, write_outputs

__all__ = ["DEMO_BUNDLE", "run_demo"]

DEMO_BUNDLE = "ich_cnn_lstm"


def _slice_map(reports: Sequence[dict], path: Path) -> Path:
    """Which series each predicted slice belongs to, for scan-level scores from slice ones."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sop_instance_uid", "series_instance_uid"])
        for report in reports:
            uid = report["series"]["series_instance_uid"]
            writer.writerows((s["sop_instance_uid"], uid) for s in report["slices"])
    return path


def run_demo(
    output: str | Path = "ichbundles_demo",
    train_scans: int = 32,
    test_scans: int = 12,
    size: int = 256,
    epochs: int = 6,
    image_size: int = 128,
    seed: int = 0,
    overrides: Sequence[str] = (),
) -> dict[str, Path]:
    """Generate, train, evaluate and predict; returns the paths of the outputs.

    Args:
        output: folder for everything (data, run, predictions, evaluation).
        train_scans: synthetic scans to train and validate on (seed ``seed``).
        test_scans: held-out synthetic scans (seed ``seed + 1``).
        size: synthetic image size in pixels.
        epochs: training epochs.
        image_size: the network's input size (the bundle's CPU configuration uses 256; the
            demo's default of 128 keeps it within minutes on 2 cores).
        seed: synthetic data seed.
        overrides: further ``KEY=VALUE`` bundle config overrides.
    """
    output = Path(output)
    settings = [f"image_size={image_size}", *overrides]
    train_dir, test_dir = output / "data" / "train", output / "data" / "test"
    print(f"[1/4] synthetic data: {train_scans} training scans, {test_scans} held-out scans")
    generate_dataset(train_dir, train_scans, size=size, seed=seed)
    generate_dataset(test_dir, test_scans, size=size, seed=seed + 1)

    print(f"[2/4] training {DEMO_BUNDLE} for {epochs} epochs (CPU configuration)")
    run_dir = output / "run"
    checkpoint = train_bundle(DEMO_BUNDLE, train_dir, run_dir, epochs=epochs, overrides=settings)

    print("[3/4] predicting the held-out scans")
    series = sorted(p for p in (test_dir / "dicom").iterdir() if p.is_dir())
    predictions = output / "predictions"
    results = predict_series(
        DEMO_BUNDLE, checkpoint, series, predictions, overrides=parse_overrides(settings)
    )
    reports = [r.report for r in results if r.ok]

    print("[4/4] evaluating against the held-out labels")
    evaluation = evaluate_files(
        [predictions / "predictions.csv"],
        labels=test_dir / "labels.csv",
        slice_map=_slice_map(reports, predictions / "slice_map.csv"),
    )
    evaluation_dir = output / "evaluation"
    write_outputs(evaluation, evaluation_dir)
    print(format_table(evaluation.metrics))

    paths = {
        "checkpoint": checkpoint,
        "report": next(r.path for r in results if r.ok),
        "metrics": evaluation_dir / "metrics.json",
        "evaluation_report": evaluation_dir / "report.md",
        "mlflow_db": run_dir / "mlruns.db",
    }
    scan_any = evaluation.metrics["scan_level"]["per_class"]["any"]["auc"]
    auc = "undefined (one label value only)" if scan_any is None else f"{scan_any:.3f}"
    print(f"\nheld-out scan-level 'any' AUC: {auc} ({test_scans} scans)")
    for name, path in paths.items():
        print(f"{name:18s} {path}")
    print(
        f"browse the run:    mlflow ui --backend-store-uri sqlite:///{paths['mlflow_db'].resolve()}"
    )
    (output / "demo.json").write_text(json.dumps({k: str(v) for k, v in paths.items()}, indent=2))
    return paths
