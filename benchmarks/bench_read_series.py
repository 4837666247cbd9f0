"""Speed and memory of ``read_series`` beside a plain pydicom loop and MONAI's PydicomReader.

Writes a synthetic 40-slice 512x512 uncompressed CT series, then times in one run (interleaved,
median of repeats, files in the page cache):

- ``plain``: the least a reader can do: ``dcmread`` each file, stack ``pixel_array``, rescale;
- ``read_series``: this project's reader (series selection, ordering, quirks, HU);
- ``monai``: ``LoadImage(reader=PydicomReader())`` on the folder.

Then measures the peak memory of ``read_series`` on a 128-slice 512x512 series (tracemalloc
peak, which numpy allocations report to, and the growth of the process's peak RSS) against the
size of its float32 volume, each in a fresh process. Prints a table and saves JSON.

Usage: python benchmarks/bench_read_series.py [--repeats 7] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

from ichbundles.data.synthetic import make_scan, write_dicom_series
from ichbundles.data.synthetic.quirks import UidFactory
from ichbundles.io import read_series

SIZE = 512


def write_fixed_series(folder: Path, n_slices: int, seed: int = 0) -> list[Path]:
    """A synthetic series with exactly ``n_slices`` slices (the phantom's slices repeated)."""
    scan = make_scan(seed, size=SIZE)
    index = np.arange(n_slices) % scan.hu.shape[0]
    step = np.array([0.0, 0.0, scan.spacing[0]])
    per_slice = {
        f.name: getattr(scan, f.name)[index]
        for f in dataclasses.fields(scan)
        if isinstance(getattr(scan, f.name), np.ndarray) and f.name != "scan_labels"
    }
    per_slice["positions"] = scan.positions[0] + np.outer(np.arange(n_slices), step)
    fixed = dataclasses.replace(scan, **per_slice)
    return write_dicom_series(
        fixed, folder, uids=UidFactory(f"bench-{n_slices}"), rng=np.random.default_rng(seed)
    )


def plain_loop(files: list[Path]) -> np.ndarray:
    datasets = [pydicom.dcmread(f) for f in files]
    volume = np.stack([ds.pixel_array for ds in datasets]).astype(np.float32)
    slope = float(datasets[0].RescaleSlope)
    intercept = float(datasets[0].RescaleIntercept)
    return volume * slope + intercept


def monai_loader():
    from monai.transforms import LoadImage

    return LoadImage(reader="PydicomReader", image_only=True)


def time_readers(folder: Path, repeats: int) -> dict:
    files = sorted(folder.iterdir())
    load_monai = monai_loader()
    readers = {
        "plain_pydicom_loop": lambda: plain_loop(files),
        "read_series": lambda: read_series(folder).hu,
        "monai_pydicom_reader": lambda: load_monai(str(folder)),
    }
    for read in readers.values():  # warm the page cache and lazy imports
        read()
    times: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(repeats):
        for name, read in readers.items():
            start = time.perf_counter()
            read()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    plain = medians["plain_pydicom_loop"]
    return {
        "median_s": medians,
        "all_s": times,
        "ratio_to_plain": {name: value / plain for name, value in medians.items()},
        "read_series_vs_monai": medians["read_series"] / medians["monai_pydicom_reader"],
    }


# VmHWM (the peak resident set of this process image) rather than ru_maxrss, which Linux keeps
# across exec and so would report the parent's peak.
_MEMORY_PROBE = """
import json, sys, tracemalloc
from ichbundles.io import read_series

def high_water_mark():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

before = high_water_mark()
tracemalloc.start()
series = read_series(sys.argv[1])
current, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
after = high_water_mark()
print(json.dumps({"shape": list(series.hu.shape), "volume_bytes": series.hu.nbytes,
                  "tracemalloc_peak_bytes": peak, "rss_peak_growth_bytes": after - before}))
"""


def measure_memory(folder: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    volume = figures["volume_bytes"]
    figures["tracemalloc_peak_over_volume"] = figures["tracemalloc_peak_bytes"] / volume
    figures["rss_peak_growth_over_volume"] = figures["rss_peak_growth_bytes"] / volume
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        series_40 = Path(tmp) / "s40"
        series_128 = Path(tmp) / "s128"
        write_fixed_series(series_40, 40)
        write_fixed_series(series_128, 128)
        speed = time_readers(series_40, args.repeats)
        memory = measure_memory(series_128)

    results = {
        "benchmark": "read_series",
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "speed_40x512x512": speed,
        "memory_128x512x512": memory,
        "targets": {"ratio_to_plain_max": 1.25, "faster_than_monai": True, "memory_max": 2.5},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "read_series.json"
    path.write_text(json.dumps(results, indent=2))

    print("40 x 512 x 512 uncompressed, median of", args.repeats, "runs")
    for name, seconds in speed["median_s"].items():
        ratio = speed["ratio_to_plain"][name]
        print(f"  {name:22s} {seconds:7.3f} s   {ratio:5.2f}x plain")
    print(f"  read_series / MONAI    {speed['read_series_vs_monai']:.2f}")
    print("128 x 512 x 512 peak memory over the float32 volume")
    print(f"  tracemalloc peak       {memory['tracemalloc_peak_over_volume']:.2f}x")
    print(f"  peak RSS growth        {memory['rss_peak_growth_over_volume']:.2f}x")
    print(f"saved {path}")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    main()
