"""Speed of ``Predictor.predict`` on one 40-slice 512x512 DICOM series.

Writes a synthetic uncompressed series (``write_fixed_series`` of ``bench_read_series.py``),
then for each configuration of the ``ich_cnn_lstm`` bundle (random weights: the speed does not
depend on them) predicts it once to warm up and ``--repeats`` times more, and reports the median
seconds of reading, preprocessing, the model and the total:

- ``cpu``: resnet18_small, hidden 128, 256 px (the bundle's defaults; target under 2.5 s);
- ``paper``: resnet50, hidden 512, 512 px.

Prints a table and saves JSON. Usage:
python benchmarks/bench_predict.py [--repeats 3] [--configs cpu paper] [--out benchmarks/results]
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

import torch

from ichbundles.bundle.predict import Predictor, load_bundle_config

sys.path.insert(0, str(Path(__file__).parent))
from bench_read_series import write_fixed_series

BUNDLE = "ich_cnn_lstm"
N_SLICES = 40
CONFIGS = {
    "cpu": {},
    "paper": {"backbone": "resnet50", "hidden": 512, "image_size": 512},
}


def time_config(series: Path, folder: Path, name: str, repeats: int) -> dict:
    overrides = CONFIGS[name]
    torch.manual_seed(0)
    network = load_bundle_config(BUNDLE, overrides=overrides).get_parsed_content("network_def")
    checkpoint = folder / f"{name}.pt"
    torch.save(network.state_dict(), checkpoint)
    predictor = Predictor(BUNDLE, checkpoint, device="cpu", overrides=overrides)
    predictor.predict(series)  # warm-up: lazy imports, allocator, page cache
    runs = [predictor.predict(series)["timing_s"] for _ in range(repeats)]
    return {
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

    print(f"{'config':8} {'read':>7} {'preproc':>7} {'model':>7} {'total':>7}  (median s)")
    for name, result in results.items():
        m = result["median_s"]
        print(
            f"{name:8} {m['read']:7.3f} {m['preprocess']:7.3f} {m['model']:7.3f} {m['total']:7.3f}"
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
