"""``ichbundles demo``: the shipped model on fresh phantoms, then a short training, in minutes.

Part 1 shows what the ``ich_cnn_lstm`` bundle's shipped model does on a held-out synthetic set
made from a seed no training used: scan-level AUC with its 95% CI, a ROC plot, and a picture
of one scan with a hemorrhage. Part 2 runs the training pipeline in its CPU configuration on a
small synthetic set (tracked in MLflow) and scores the result on the same held-out set: a
few-minute training that shows every step, not a model's quality.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from ichbundles.bundle.checkpoint import SHIPPED_MODEL
from ichbundles.bundle.paths import bundle_path
from ichbundles.bundle.showcase import (
    HeldOutScore,
    positive_example,
    scan_picture,
    score_held_out,
)
from ichbundles.bundle.train import train_bundle
from ichbundles.data.synthetic import generate_dataset
from ichbundles.metrics.report import format_table

__all__ = ["DEMO_BUNDLE", "TEST_SEED", "run_demo"]

DEMO_BUNDLE = "ich_cnn_lstm"
#: Seed of the held-out set: one that neither the shipped model's training nor part 2's uses.
TEST_SEED = 2026


def _auc_line(name: str, score: HeldOutScore) -> str:
    """One line: scan-level "any" AUC with its CI, and the set it was measured on."""
    entry = score.scan_any
    if entry["auc"] is None:
        auc = f"undefined ({entry['auc_reason']})"
    else:
        ci = entry["auc_ci"]
        auc = f"{entry['auc']:.3f}" + ("" if ci is None else f" [95% CI {ci[0]:.3f}, {ci[1]:.3f}]")
    n = entry["n_positive"] + entry["n_negative"]
    return f"{name} scan-level 'any' AUC {auc} ({n} scans, {entry['n_positive']} with blood)"


def _clock() -> tuple[float, float]:
    """Wall time and this process's CPU time (all its threads), in seconds."""
    return time.perf_counter(), time.process_time()


def _lap(
    laps: dict[str, tuple[float, float]], name: str, since: tuple[float, float]
) -> tuple[float, float]:
    """Record the wall and CPU seconds since ``since`` as ``laps[name]``; returns now."""
    now = _clock()
    laps[name] = (now[0] - since[0], now[1] - since[1])
    return now


def _part1(
    bundle: str | os.PathLike, test_dir: Path, size: int, out: Path
) -> tuple[dict[str, Path], HeldOutScore | None]:
    """The shipped model on the held-out set: its outputs and score (none without a model)."""
    model = bundle_path(bundle) / SHIPPED_MODEL
    if not model.is_file():
        print(f"part 1: {bundle_path(bundle).name} ships no trained model ({model}); on to part 2")
        return {}, None
    print(f"part 1: the shipped model {model}")
    score = score_held_out(bundle, model, test_dir, out)
    print(format_table(score.evaluation.metrics))
    print(_auc_line("shipped model:", score))
    print(f"ROC plot: {score.roc_png}")
    paths = {
        "shipped_model": model,
        "shipped_metrics": score.metrics_json,
        "shipped_evaluation_report": score.evaluation_dir / "report.md",
        "shipped_roc": score.roc_png,
    }
    try:
        record, report = positive_example(score, test_dir / "manifest.json")
    except ValueError as error:  # a held-out set of a few scans, none with blood
        print(f"no scan pictured: {error}")
        return paths, score
    picture = scan_picture(report, record, size, out / f"scan_{record['scan_id']}.png")
    print(f"scan {record['scan_id']} pictured: {picture}")
    return paths | {"shipped_scan_picture": picture}, score


def run_demo(
    output: str | Path = "ichbundles_demo",
    train_scans: int = 32,
    test_scans: int = 24,
    size: int = 256,
    epochs: int = 3,
    image_size: int = 128,
    seed: int = 0,
    test_seed: int = TEST_SEED,
    bundle: str | os.PathLike = DEMO_BUNDLE,
    overrides: Sequence[str] = (),
) -> dict[str, Path]:
    """Show the shipped model on a held-out set, then train briefly; returns the output paths.

    Also writes them to ``output/demo.json``.

    Args:
        output: folder for everything (data, predictions, evaluations, training run).
        train_scans: synthetic scans part 2 trains and validates on (seed ``seed``).
        test_scans: held-out synthetic scans (seed ``test_seed``) both parts are scored on.
        size: synthetic image size in pixels.
        epochs: part 2's training epochs.
        image_size: part 2's network input size (the bundle's CPU configuration uses 256; 128
            keeps the training within minutes on 2 cores). The shipped model brings its own.
        seed: part 2's training data seed.
        test_seed: held-out data seed; keep it apart from every training seed.
        bundle: ``ich_cnn_lstm`` or a copy of its folder.
        overrides: further ``KEY=VALUE`` overrides of part 2's training config.
    """
    output = Path(output).absolute()  # every path printed and in demo.json usable from anywhere
    train_dir, test_dir = output / "data" / "train", output / "data" / "test"
    laps: dict[str, tuple[float, float]] = {}
    mark = _clock()
    print(f"held-out set: {test_scans} synthetic scans at {size} px, seed {test_seed}")
    generate_dataset(test_dir, test_scans, size=size, seed=test_seed)
    mark = _lap(laps, "held-out data", mark)

    paths, shipped = _part1(bundle, test_dir, size, output / "shipped")
    mark = _lap(laps, "part 1", mark)

    print(
        f"part 2: the training pipeline: {bundle_path(bundle).name} for {epochs} epochs on "
        f"{train_scans} scans (seed {seed}) at {image_size} px, tracked in MLflow"
    )
    generate_dataset(train_dir, train_scans, size=size, seed=seed)
    run_dir = output / "run"
    settings = [f"image_size={image_size}", *overrides]
    checkpoint = train_bundle(bundle, train_dir, run_dir, epochs=epochs, overrides=settings)
    score = score_held_out(bundle, checkpoint, test_dir, output / "trained")
    _lap(laps, "part 2", mark)

    paths |= {
        "checkpoint": checkpoint,
        "report": score.results[0].path,
        "metrics": score.metrics_json,
        "evaluation_report": score.evaluation_dir / "report.md",
        "roc": score.roc_png,
        "mlflow_db": run_dir / "mlruns.db",
    }
    print()
    if shipped is not None:
        print(_auc_line("part 1, shipped model:", shipped))
    print(_auc_line(f"part 2, {epochs}-epoch training:", score))
    print("  (part 2's model is a few minutes' training: it shows the pipeline, not the model)")
    for name, path in paths.items():
        print(f"{name:26s} {path}")
    print(f"browse the run: mlflow ui --backend-store-uri sqlite:///{paths['mlflow_db'].resolve()}")
    walls, cpus = zip(*laps.values(), strict=True)
    laps["total"] = (sum(walls), sum(cpus))
    # CPU beside wall time: on a shared machine the wall time says little about the demo
    timing = ", ".join(
        f"{name} {wall:.0f} s (CPU {cpu:.0f} s)" for name, (wall, cpu) in laps.items()
    )
    print(f"time: {timing}")
    (output / "demo.json").write_text(json.dumps({k: str(v) for k, v in paths.items()}, indent=2))
    return paths
