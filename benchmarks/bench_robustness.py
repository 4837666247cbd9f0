"""Robustness table: AUC on held-out phantoms with each factor pushed outside its normal range.

Generates a baseline held-out set (``--scans`` scans of ``--seed``, a seed far from training
seeds) and, with the same seed, one set per stressed value of each factor
(``ichbundles.data.synthetic.FACTORS``: the same heads, bleeds and geometry, only that factor
changed); predicts every set with ``predict_series`` and scores it with ``ichbundles.metrics``:

- scan-level "any" AUC with its 95% bootstrap CI (the model's scan output);
- its change from the baseline, with a paired 95% CI: the same bootstrap resamples of scan
  indices in both sets (scan ``i`` is the same head in each);
- slice-level "any" AUC (CI resampling whole scans) and the RSNA weighted log loss of the slices.

Lesion stresses can change the truth (a bleed shrunk below 3 mm2 on every slice is no longer
labelled): each row gives its positive scans. Prints a markdown table and saves
``robustness.json`` and ``robustness.md`` under ``--out``. A checkpoint is needed: the bundle's
shipped ``models/model.pt`` by default.

Usage: python benchmarks/bench_robustness.py [--bundle ich_cnn_lstm] [--checkpoint PT]
    [--factors NAME ...] [--scans 60] [--seed 7700] [--size 256] [--workers 1]
    [--keep-data DIR] [--bootstrap 1000] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ichbundles.bundle.checkpoint import shipped_checkpoint
from ichbundles.bundle.paths import BundleNotFoundError
from ichbundles.bundle.predict import PredictionResult, predict_series
from ichbundles.bundle.report import file_sha256
from ichbundles.constants import ICH_CLASSES
from ichbundles.data.synthetic import FACTORS, GENERATOR, Stress, generate_dataset
from ichbundles.metrics import (
    bootstrap_auc,
    evaluate_arrays,
    evaluate_files,
    percentile_ci,
    roc_auc,
)

ANY = ICH_CLASSES.index("any")


@dataclass(frozen=True)
class StressSet:
    """One held-out set: ``name`` (``baseline`` or ``factor=value``), its factor and stress."""

    name: str
    factor: str | None
    value: float | None
    stress: Stress


def stress_sets(factors: list[str]) -> list[StressSet]:
    """The baseline, then one set per stressed value of each factor, in table order."""
    sets = [StressSet("baseline", None, None, Stress())]
    for name in factors:
        for value in FACTORS[name].stressed:
            sets.append(StressSet(f"{name}={value:g}", name, value, Stress(**{name: value})))
    return sets


def make_set(folder: Path, item: StressSet, args: argparse.Namespace) -> dict:
    """Generate a set, or reuse one in ``folder`` made with the same arguments; its manifest."""
    path = folder / "manifest.json"
    wanted = {"n_scans": args.scans, "size": args.size, "seed": args.seed}
    if path.is_file():
        manifest = json.loads(path.read_text())
        given = manifest["arguments"]
        same = all(given.get(k) == v for k, v in wanted.items())
        same = same and manifest["generator"] == GENERATOR
        if same and given.get("stress", {}) == item.stress.values():
            return manifest
    generate_dataset(
        folder,
        args.scans,
        size=args.size,
        seed=args.seed,
        workers=args.workers,
        stress=item.stress,
        progress=False,
    )
    return json.loads(path.read_text())


def write_slice_map(results: list[PredictionResult], path: Path) -> None:
    """``sop_instance_uid,series_instance_uid`` of every predicted slice (scan-clustered CIs)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sop_instance_uid", "series_instance_uid"])
        for result in results:
            series = result.report["series"]["series_instance_uid"]
            writer.writerows([s["sop_instance_uid"], series] for s in result.report["slices"])


def score_set(
    folder: Path, manifest: dict, results: list[PredictionResult], out: Path, n_boot: int
) -> dict:
    """Scan- and slice-level figures of one predicted set (scans in manifest order)."""
    scans = manifest["scans"]
    y = np.array([s["scan_labels"] for s in scans], dtype=np.float64)
    p = np.array(
        [[r.report["scan"]["probabilities"][c] for c in ICH_CLASSES] for r in results],
        dtype=np.float64,
    )
    scan_level = evaluate_arrays(y, p, n_bootstrap=n_boot, seed=0)
    write_slice_map(results, out / "slice_map.csv")
    slices = evaluate_files(
        [out / "predictions.csv"],
        labels=folder / "labels.csv",
        slice_map=out / "slice_map.csv",
        n_bootstrap=n_boot,
        seed=0,
    ).metrics["slice_level"]
    scan_any, slice_any = scan_level["per_class"]["any"], slices["per_class"]["any"]
    return {
        "n_scans": len(scans),
        "n_positive_scans": int(y[:, ANY].sum()),
        "scan_auc": scan_any["auc"],
        "scan_auc_ci": scan_any["auc_ci"],
        "scan_weighted_log_loss": scan_level["weighted_log_loss"],
        "n_slices": slices["n"],
        "n_positive_slices": slice_any["n_positive"],
        "slice_auc": slice_any["auc"],
        "slice_auc_ci": slice_any["auc_ci"],
        "slice_weighted_log_loss": slices["weighted_log_loss"],
        "_any": (y[:, ANY], p[:, ANY]),  # for the paired change; dropped before saving
    }


def paired_change(base: tuple, ours: tuple, n_boot: int) -> tuple[float | None, list | None]:
    """AUC change from the baseline and its 95% CI over the same resamples of scan indices.

    ``bootstrap_auc`` draws its resamples from the seed and the number of scans only, so both
    sets see the same scan indices in each resample.
    """
    change = float(roc_auc(*ours) - roc_auc(*base))
    if not np.isfinite(change):
        return None, None
    samples = bootstrap_auc(*ours, n_boot, seed=0) - bootstrap_auc(*base, n_boot, seed=0)
    low, high = percentile_ci(samples)[:, 0]
    return change, None if np.isnan(low) else [float(low), float(high)]


def run_set(item: StressSet, root: Path, checkpoint: Path, args: argparse.Namespace) -> dict:
    """Generate (or reuse), predict and score one set."""
    start = time.perf_counter()
    folder = root / "data" / item.name
    manifest = make_set(folder, item, args)
    generated = time.perf_counter()
    series = [folder / s["folder"] for s in manifest["scans"]]
    out = root / "predictions" / item.name
    results = predict_series(args.bundle, checkpoint, series, out, progress=False)
    predicted = time.perf_counter()
    factor = FACTORS.get(item.factor)
    row: dict = {
        "set": item.name,
        "factor": item.factor,
        "value": item.value,
        "normal": factor.describe(factor.normal) if factor else None,
        "stressed": factor.describe(item.value) if factor else None,
        "realised": realised(manifest, item.factor),
        "seconds": {"generate": generated - start, "predict": predicted - generated},
    }
    errors = [r.error for r in results if not r.ok]
    if errors:  # scored only when every scan was predicted: the sets stay paired
        row["errors"] = errors
    else:
        row.update(score_set(folder, manifest, results, out, args.bootstrap))
    auc = row.get("scan_auc")
    print(
        f"{item.name}: {len(series)} scans, generated in {row['seconds']['generate']:.0f} s, "
        f"predicted in {row['seconds']['predict']:.0f} s; "
        + (f"{len(errors)} failed" if errors else f"scan AUC {_f(auc)}"),
        flush=True,
    )
    return row


def realised(manifest: dict, factor: str | None) -> list[float] | None:
    """[min, max] over the set's scans of the factor's realised value (bleeds' HU for
    ``lesion_hu``); None for the baseline and ``lesion_size``."""
    if factor in (None, "lesion_size"):
        return None
    if factor == "lesion_hu":
        values = [les["hu"] for s in manifest["scans"] for les in s["lesions"]]
    else:
        values = [s["factors"][factor] for s in manifest["scans"]]
    return [float(min(values)), float(max(values))] if values else None


def _f(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if sign else f"{value:.3f}"


def _with_ci(value: float | None, ci: list | None, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    if ci is None:
        return _f(value, sign)
    return f"{_f(value, sign)} [{_f(ci[0], sign)}, {_f(ci[1], sign)}]"


def markdown(rows: list[dict]) -> str:
    """The robustness table."""
    lines = [
        "| factor | normal range | stressed | scans (+) | scan AUC [95% CI] "
        "| change vs baseline [95% CI] | slice AUC | slice wll |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "errors" in row:
            scored = [f"{len(row['errors'])} scans failed"] + ["n/a"] * 4
        else:
            scored = [
                f"{row['n_scans']} ({row['n_positive_scans']})",
                _with_ci(row["scan_auc"], row["scan_auc_ci"]),
                "-" if row["factor"] is None else _with_ci(row["change"], row["change_ci"], True),
                _f(row["slice_auc"]),
                _f(row["slice_weighted_log_loss"]),
            ]
        head = [row["factor"] or "baseline", row["normal"] or "-", row["stressed"] or "-"]
        lines.append("| " + " | ".join(head + scored) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="ich_cnn_lstm", help="bundle name or folder")
    parser.add_argument("--checkpoint", type=Path, help="model.pt (default: the shipped model)")
    parser.add_argument(
        "--factors", nargs="+", choices=list(FACTORS), default=list(FACTORS), metavar="NAME"
    )
    parser.add_argument("--scans", type=int, default=60, help="scans per set (default 60)")
    parser.add_argument("--seed", type=int, default=7700, help="held-out seed (default 7700)")
    parser.add_argument("--size", type=int, default=256, help="image size (default 256)")
    parser.add_argument("--workers", type=int, default=1, help="generator processes")
    parser.add_argument("--keep-data", type=Path, help="keep sets and predictions here (reused)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples for the CIs")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    try:
        checkpoint = args.checkpoint or shipped_checkpoint(args.bundle)
    except (BundleNotFoundError, FileNotFoundError) as error:
        parser.error(str(error))
    if not checkpoint.is_file():
        parser.error(f"{checkpoint}: no such checkpoint file")

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep_data or Path(tmp)
        rows = [run_set(item, root, checkpoint, args) for item in stress_sets(args.factors)]
    base = rows[0].get("_any")
    for row in rows:
        pair = row.pop("_any", None)
        if row["factor"] is not None and "errors" not in row:
            row["change"], row["change_ci"] = (
                paired_change(base, pair, args.bootstrap) if base else (None, None)
            )
    table = markdown(rows)
    report = {
        "benchmark": "robustness",
        "bundle": args.bundle,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": file_sha256(checkpoint),
        "generator": GENERATOR,
        "scans": args.scans,
        "seed": args.seed,
        "size": args.size,
        "bootstrap": args.bootstrap,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "seconds": time.perf_counter() - start,
        "sets": rows,
    }
    print()
    print(table, end="")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "robustness.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "robustness.md").write_text(table)
    print(f"saved {args.out / 'robustness.json'} and {args.out / 'robustness.md'}")


if __name__ == "__main__":
    main()
