"""Speed of ``ichbundles evaluate``: an RSNA-sized slice file end to end, and the AUC bootstrap.

Prints and saves ``benchmarks/results/metrics.json``. Targets (2 cores): end to end under 30 s
for 750,000 slices x 6 classes; 1,000 AUC resamples of 5,000 scans x 6 classes under 10 s.

    python benchmarks/bench_metrics.py [--slices 750000] [--scans 5000] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from ichbundles.constants import ICH_CLASSES, NUM_CLASSES
from ichbundles.metrics import bootstrap_auc, evaluate_arrays, evaluate_files, write_outputs

RESULTS = Path(__file__).parent / "results" / "metrics.json"


def _synthetic(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Labels with RSNA-like prevalences and informative probabilities."""
    prevalence = np.array([0.004, 0.05, 0.035, 0.05, 0.065, 0.14])
    y = (rng.random((n, NUM_CLASSES)) < prevalence).astype(np.uint8)
    y[:, -1] = np.maximum(y[:, -1], y[:, :-1].max(axis=1))
    logits = rng.normal(-3.0, 1.5, (n, NUM_CLASSES)) + 4.0 * y
    return y, np.round(1 / (1 + np.exp(-logits)), 6)


def _write_slice_files(folder: Path, n: int, slices_per_scan: int, seed: int) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    y, p = _synthetic(n, rng)
    uids = np.char.add("ID_", np.char.mod("%09x", np.arange(n) * 7919 + 0x10000000))
    ids = np.char.add(np.char.add(np.repeat(uids, NUM_CLASSES), "_"), np.tile(ICH_CLASSES, n))
    order = rng.permutation(n * NUM_CLASSES)  # submissions need not be in label order
    paths = {"predictions": folder / "pred.csv", "labels": folder / "labels.csv"}
    pacsv.write_csv(pa.table({"ID": ids[order], "Label": p.ravel()[order]}), paths["predictions"])
    pacsv.write_csv(pa.table({"ID": ids, "Label": y.ravel()}), paths["labels"])
    scans = np.char.mod("1.2.826.0.1.%d", np.arange(n) // slices_per_scan)
    paths["slice_map"] = folder / "slice_map.csv"
    pacsv.write_csv(
        pa.table({"sop_instance_uid": uids, "series_instance_uid": scans}), paths["slice_map"]
    )
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=750_000)
    parser.add_argument("--slices-per-scan", type=int, default=35)
    parser.add_argument("--scans", type=int, default=5000)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    result: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "slices": args.slices,
        "scans_bootstrap": args.scans,
        "bootstrap": args.bootstrap,
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        paths = _write_slice_files(folder, args.slices, args.slices_per_scan, seed=0)
        result["generate_s"] = round(time.perf_counter() - t0, 2)
        for name, slice_map in (("rsna_slice_level", None), ("rsna_slice_and_scan_level", True)):
            t0 = time.perf_counter()
            evaluation = evaluate_files(
                [paths["predictions"]],
                labels=paths["labels"],
                slice_map=paths["slice_map"] if slice_map else None,
                n_bootstrap=args.bootstrap,
            )
            evaluated = time.perf_counter() - t0
            write_outputs(evaluation, folder / name)
            total = time.perf_counter() - t0
            timing = evaluation.metrics["timing_s"]
            result[name] = {
                "rows": args.slices * NUM_CLASSES,
                "parse_s": timing["parse"],
                "metrics_s": timing["metrics"],
                "write_s": round(total - evaluated, 2),
                "end_to_end_s": round(total, 2),
                "auc_ci_method": {
                    lv: evaluation.metrics[lv]["auc_ci_method"]
                    for lv in ("slice_level", "scan_level")
                    if lv in evaluation.metrics
                },
            }
            print(f"{name}: {result[name]}")

    rng = np.random.default_rng(1)
    y, p = _synthetic(args.scans, rng)
    t0 = time.perf_counter()
    bootstrap_auc(y, p, args.bootstrap, seed=0)
    result["bootstrap_auc_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    evaluate_arrays(y, p, n_bootstrap=args.bootstrap)
    result["scan_level_all_figures_s"] = round(time.perf_counter() - t0, 2)
    print(f"bootstrap AUC {args.bootstrap} x {args.scans} scans x 6: {result['bootstrap_auc_s']} s")
    print(f"scan level, every figure with bootstrap CIs: {result['scan_level_all_figures_s']} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
