"""VGPMIL speed on 40,000 synthetic instances x 8 features, and its quality on the Att-CNN's real
RSNA slice features (paper 000) when they are available.

(a) fit + predict on synthetic bags of about 40 instances with 200 inducing points and 200
iterations (target on 2 cores: fit under 60 s), with bag and instance AUC on a held-out set.
(b) If the features file exists (read in place, never copied), its scans are split in two halves
by a SHA-256 hash of ``bag_name``; VGPMIL is fitted on one half from scan labels only and scored
on the other against the true scan and slice labels, next to the Att-CNN's own scan probability.

Prints the figures and saves ``benchmarks/results/vgpmil.json``.

    python benchmarks/bench_vgpmil.py [--instances 40000] [--features PATH] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy

from ichbundles.metrics.roc import roc_auc
from ichbundles.metrics.threshold import confusion_counts, stats_from_counts
from ichbundles.mil import VGPMIL

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "vgpmil.json"
# Relative to the repository's parent; read in place, never copied into the repository.
FEATURES = ROOT.parent / "shared/data/att_mil_rsna_features/rsna_test_fold0_features.csv"
FEATURE_COLUMNS = [f"feature_{i}" for i in range(8)]


def synthetic_bags(
    n: int, dim: int, bag_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bags of ``bag_size`` +/- 25 % instances; half the bags hold 1 to 10 % positive instances
    drawn from a Gaussian shifted by 2.5 along the first two features (overlapping classes).

    Returns:
        ``X (n, dim)``, bag id, bag label and true label of each instance.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(bag_size * 3 // 4, bag_size * 5 // 4 + 1, 2 * n // bag_size)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n) + 1]
    sizes[-1] -= sizes.sum() - n
    bag = np.repeat(np.arange(sizes.size), sizes)
    positive = rng.random(sizes.size) < 0.5
    instance = (rng.random(n) < 0.1) & positive[bag]
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    instance[starts[positive]] = True  # at least one positive instance in a positive bag
    x = rng.normal(size=(n, dim))
    x[instance, :2] += 2.5
    return x, bag, positive[bag].astype(int), instance


def bag_labels_in_unique_order(bag_ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    _, first = np.unique(bag_ids, return_index=True)
    return labels[first]


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, and accuracy and F1 of the decisions ``p >= 0.5``."""
    stats = stats_from_counts(confusion_counts(y[:, None], (p >= 0.5)[:, None]))
    return {
        "n": int(y.size),
        "positives": int(y.sum()),
        "auc": round(float(roc_auc(y, p)), 4),
        "accuracy": round(float(stats["accuracy"][0]), 4),
        "f1": round(float(stats["f1"][0]), 4),
    }


def bench_synthetic(args: argparse.Namespace) -> dict:
    x, bag, y, _ = synthetic_bags(args.instances, args.dim, args.bag_size, seed=0)
    x_test, bag_test, y_test, inst_test = synthetic_bags(
        args.instances // 4, args.dim, args.bag_size, seed=1
    )
    model = VGPMIL(num_inducing=args.inducing, max_iter=args.iterations, seed=0)
    t0 = time.perf_counter()
    model.fit(x, bag, y)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.predict_proba(x, bag)
    predict_s = time.perf_counter() - t0
    instance_p, bag_p = model.predict_proba(x_test, bag_test)
    return {
        "instances": int(x.shape[0]),
        "features": int(x.shape[1]),
        "bags": int(np.unique(bag).size),
        "inducing_points": int(model.inducing_points_.shape[0]),
        "iterations": args.iterations,
        "fit_s": round(fit_s, 2),
        "predict_s": round(predict_s, 3),
        "fit_plus_predict_s": round(fit_s + predict_s, 2),
        "elbo_first_last": [round(float(v), 2) for v in model.history_[[0, -1]]],
        "held_out": {
            "instances": int(x_test.shape[0]),
            "bag": scores(bag_labels_in_unique_order(bag_test, y_test), bag_p),
            "instance": scores(inst_test.astype(int), instance_p),
        },
    }


def half_of(name: str) -> int:
    """0 or 1 from the SHA-256 of a scan name: a split that does not depend on row order."""
    return hashlib.sha256(name.encode()).digest()[0] & 1


def bench_real(path: Path, args: argparse.Namespace) -> dict:
    table = pd.read_csv(path)
    half = table["bag_name"].map(half_of).to_numpy()
    out: dict = {"file": str(path), "slices": len(table), "scans": table["bag_name"].nunique()}
    for train_half in (0, 1):
        train, test = table[half == train_half], table[half != train_half]
        model = VGPMIL(num_inducing=args.inducing, max_iter=args.iterations, seed=0)
        t0 = time.perf_counter()
        model.fit(train[FEATURE_COLUMNS].to_numpy(), train["bag_name"], train["bag_label"])
        fit_s = time.perf_counter() - t0
        names = test["bag_name"].to_numpy()
        instance_p, bag_p = model.predict_proba(test[FEATURE_COLUMNS].to_numpy(), names)
        scan_truth = bag_labels_in_unique_order(names, test["bag_label"].to_numpy())
        cnn_scan_p = bag_labels_in_unique_order(names, test["bag_cnn_probability"].to_numpy())
        cnn_slice = test["cnn_prediction"].to_numpy().astype(float)
        slice_truth = test["instance_label"].to_numpy()
        out[f"fit_half{train_half}_test_half{1 - train_half}"] = {
            "train": {"scans": int(train["bag_name"].nunique()), "slices": len(train)},
            "fit_s": round(fit_s, 2),
            "vgpmil_scan": scores(scan_truth, bag_p),
            "vgpmil_slice": scores(slice_truth, instance_p),
            "att_cnn_scan": scores(scan_truth, cnn_scan_p),
            # the Att-CNN's slice labels from attention are 0/1 decisions: its AUC is that of
            # a single threshold, shown for accuracy and F1
            "att_cnn_slice_from_attention": scores(slice_truth, cnn_slice),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=40_000)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--bag-size", type=int, default=40)
    parser.add_argument("--inducing", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--features", type=Path, default=FEATURES)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    result: dict = {
        "benchmark": "vgpmil",
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
    }
    result["synthetic"] = synthetic = bench_synthetic(args)
    print(
        f"synthetic {synthetic['instances']} x {synthetic['features']}, "
        f"{synthetic['inducing_points']} inducing points, {synthetic['iterations']} iterations: "
        f"fit {synthetic['fit_s']} s, predict {synthetic['predict_s']} s"
    )
    print(f"  held out: bag {synthetic['held_out']['bag']}")
    print(f"            instance {synthetic['held_out']['instance']}")

    if args.features.is_file():
        result["rsna_att_cnn_features"] = real = bench_real(args.features, args)
        print(f"real features {real['file']}: {real['scans']} scans, {real['slices']} slices")
        for split, figures in real.items():
            if split.startswith("fit_half"):
                print(f"  {split} (train {figures['train']}):")
                for name in ("vgpmil_scan", "att_cnn_scan", "vgpmil_slice"):
                    print(f"    {name:14s} {figures[name]}")
                print(f"    att_cnn_slice  {figures['att_cnn_slice_from_attention']}")
    else:
        result["rsna_att_cnn_features"] = {"skipped": f"{args.features} not found"}
        print(f"real features: skipped ({args.features} not found)")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
