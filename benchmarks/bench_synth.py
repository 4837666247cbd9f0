"""Seconds per 40-slice synthetic scan at 256 and 512 pixels: rendering and DICOM writing.

Renders and writes a few scans per size with ``make_scan`` and ``write_dicom_series`` (what
``ichbundles synth`` does per scan, on one process), and also times ``generate_dataset`` end to
end. Times are normalised to 40 slices (slice counts vary by seed). Prints a table and saves JSON.

Usage: python benchmarks/bench_synth.py [--scans 3] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ichbundles.data.synthetic import generate_dataset, make_scan, write_dicom_series
from ichbundles.data.synthetic.quirks import UidFactory


def per_scan(size: int, n_scans: int, folder: Path) -> dict:
    render, write = [], []
    for seed in range(n_scans):
        start = time.perf_counter()
        scan = make_scan(seed, size=size)
        rendered = time.perf_counter()
        write_dicom_series(
            scan,
            folder / f"{size}-{seed}",
            uids=UidFactory(f"bench-{size}-{seed}"),
            rng=np.random.default_rng(seed),
        )
        written = time.perf_counter()
        per_40 = 40 / scan.hu.shape[0]
        render.append((rendered - start) * per_40)
        write.append((written - rendered) * per_40)
    return {
        "render_s_per_40_slices": statistics.median(render),
        "write_s_per_40_slices": statistics.median(write),
        "total_s_per_40_slices": statistics.median(
            r + w for r, w in zip(render, write, strict=True)
        ),
    }


def end_to_end(size: int, n_scans: int, folder: Path) -> dict:
    start = time.perf_counter()
    manifest = generate_dataset(folder / f"set-{size}", n_scans, size=size, progress=False)
    seconds = time.perf_counter() - start
    slices = sum(s["n_slices"] for s in json.loads(manifest.read_text())["scans"])
    return {
        "seconds": seconds,
        "scans": n_scans,
        "slices": slices,
        "s_per_40_slices": seconds * 40 / slices,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    results: dict = {"benchmark": "synth", "python": platform.python_version(), "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for size in (256, 512):
            results["sizes"][str(size)] = {
                "per_scan": per_scan(size, args.scans, Path(tmp)),
                "generate_dataset": end_to_end(size, args.scans, Path(tmp)),
            }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "synth.json"
    path.write_text(json.dumps(results, indent=2))
    print("seconds per 40-slice scan (median over", args.scans, "scans, one process)")
    for size, figures in results["sizes"].items():
        scan, total = figures["per_scan"], figures["generate_dataset"]
        print(
            f"  {size:>4} px  render {scan['render_s_per_40_slices']:.2f}  "
            f"write {scan['write_s_per_40_slices']:.2f}  total {scan['total_s_per_40_slices']:.2f}"
            f"  | generate_dataset {total['s_per_40_slices']:.2f}"
        )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
