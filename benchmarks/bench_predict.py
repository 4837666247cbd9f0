"""Speed of ``Predictor.predict`` on one 40-slice 512x512 DICOM series.

Writes a synthetic uncompressed series (``write_fixed_series`` of ``bench_read_series.py``),
then for each configuration (random weights: the speed does not depend on them) predicts it
once to warm up and ``--repeats`` times more, and reports the median seconds of reading,
preprocessing, the model and the total:

- ``cpu``: ``ich_cnn_lstm``, resnet18_small, hidden 128, 256 px (the defaults; target 2.5 s);
- ``paper``: ``ich_cnn_lstm``, resnet50, hidden 512, 512 px;
- ``mil_cpu``: ``ich_attention_mil`` through both phases (Att-CNN at 128 px, then six VGPMILs
  of 200 inducing points fitted on random features; target 2.5 s);
- ``mil_paper``: the same at the paper's 512 px;
- ``adj_cpu``: ``ich_adjacent_slices`` through both stages (resnet10_tiny slice CNN at 128 px,
  then axial fusion; target 2.5 s);
- ``adj_paper``: the same with the paper's resnet50 at 512 px.

Prints a table and saves JSON. Usage:
python benchmarks/bench_predict.py [--repeats 3] [--configs cpu mil_cpu ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from ichbundles.bundle.predict import Predictor, load_bundle_config
from ichbundles.constants import ICH_CLASSES
from ichbundles.mil import MILFeatures, fit_vgpmil_from_features

sys.path.insert(0, str(Path(__file__).parent))
from bench_read_series import write_fixed_series

N_SLICES = 40
#: name -> (bundle, config overrides)
CONFIGS = {
    "cpu": ("ich_cnn_lstm", {}),
    "paper": ("ich_cnn_lstm", {"backbone": "resnet50", "hidden": 512, "image_size": 512}),
    "mil_cpu": ("ich_attention_mil", {}),
    "mil_paper": ("ich_attention_mil", {"image_size": 512}),
    "adj_cpu": ("ich_adjacent_slices", {}),
    "adj_paper": ("ich_adjacent_slices", {"backbone": "resnet50", "image_size": 512}),
}
#: VGPMIL of the paper's size: 200 inducing points (few iterations: prediction time does not
#: depend on them).
VGPMIL_PARAMS = {"num_inducing": 200, "max_iter": 5, "seed": 0}


def _fit_vgpmil(folder: Path, n_features: int) -> None:
    """One VGPMIL per class on random features, saved where ich_attention_mil looks for them."""
    rng = np.random.default_rng(0)
    n_bags, per_bag = 100, 20
    labels = np.repeat(rng.random((n_bags, len(ICH_CLASSES))) < 0.5, per_bag, axis=0)
    features = MILFeatures(
        bag_ids=np.repeat(np.arange(n_bags).astype(str), per_bag),
        slice_index=np.tile(np.arange(per_bag), n_bags),
        sop_instance_uids=None,
        features=rng.normal(size=(n_bags * per_bag, n_features)).astype(np.float32),
        weights=np.full(n_bags * per_bag, 1.0 / per_bag, dtype=np.float32),
        scan_probability=np.full((n_bags * per_bag, 6), 0.5, dtype=np.float32),
        scan_labels=labels.astype(np.float32),
    )
    fit_vgpmil_from_features(features, folder, ICH_CLASSES, params=VGPMIL_PARAMS)


def time_config(series: Path, folder: Path, name: str, repeats: int) -> dict:
    bundle, overrides = CONFIGS[name]
    torch.manual_seed(0)
    parser = load_bundle_config(bundle, overrides=overrides)
    network = parser.get_parsed_content("network_def")
    checkpoint = folder / name / "model.pt"
    checkpoint.parent.mkdir()
    torch.save(network.state_dict(), checkpoint)
    if bundle == "ich_attention_mil":
        _fit_vgpmil(checkpoint.parent, int(parser["features"]))
    predictor = Predictor(bundle, checkpoint, device="cpu", overrides=overrides)
    predictor.predict(series)  # warm-up: lazy imports, allocator, page cache
    runs = [predictor.predict(series)["timing_s"] for _ in range(repeats)]
    return {
        "bundle": bundle,
        "overrides": overrides,
        "median_s": {k: statistics.median(r[k] for r in runs) for k in runs[0]},
        "runs_s": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        series = Path(tmp) / "series"
        write_fixed_series(series, N_SLICES)
        for name in args.configs:
            results[name] = time_config(series, Path(tmp), name, args.repeats)

    print(f"{'config':9} {'read':>7} {'preproc':>7} {'model':>7} {'total':>7}  (median s)")
    for name, result in results.items():
        m = result["median_s"]
        print(
            f"{name:9} {m['read']:7.3f} {m['preprocess']:7.3f} {m['model']:7.3f} {m['total']:7.3f}"
        )
    report = {
        "benchmark": "predict",
        "series": {"slices": N_SLICES, "rows": 512, "columns": 512, "format": "DICOM"},
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "machine": {"python": platform.python_version(), "torch": torch.__version__},
        "configs": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "predict.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
