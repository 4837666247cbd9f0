"""Header-index throughput: files per second with 1 and 2 worker processes, and a no-op rerun.

Writes a synthetic RSNA-layout folder (flat ``ID_*.dcm`` files, as the real stage_2_train/),
indexes it with ``build_index`` from scratch with 1 and with 2 workers, then reruns on the
finished index (nothing new to read). Extrapolates to the 752,803 files of RSNA stage_2_train.
Prints a table and saves JSON.

Usage: python benchmarks/bench_index.py [--scans 40] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ichbundles.data import build_index
from ichbundles.data.synthetic import generate_dataset

RSNA_FILES = 752_803


def timed_build(root: Path, out: Path, workers: int) -> float:
    start = time.perf_counter()
    build_index(root, out, workers=workers, progress=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate_dataset(Path(tmp), args.scans, size=64, layout="rsna", progress=False)
        root = Path(tmp) / "stage_2_train"
        n_files = sum(1 for _ in root.iterdir())
        figures = {}
        for workers in (1, 2):
            out = Path(tmp) / f"index-{workers}.parquet"
            seconds = timed_build(root, out, workers)
            figures[f"workers_{workers}"] = {
                "seconds": seconds,
                "files_per_s": n_files / seconds,
                "rsna_stage_2_train_minutes": RSNA_FILES / (n_files / seconds) / 60,
            }
        figures["rerun_nothing_new_s"] = timed_build(root, Path(tmp) / "index-2.parquet", 2)
    results = {"benchmark": "index", "files": n_files, **figures}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "index.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"{n_files} DICOM headers")
    for workers in (1, 2):
        f = figures[f"workers_{workers}"]
        print(
            f"  {workers} worker(s): {f['seconds']:.2f} s, {f['files_per_s']:.0f} files/s, "
            f"RSNA stage_2_train ~{f['rsna_stage_2_train_minutes']:.0f} min"
        )
    ratio = figures["workers_1"]["seconds"] / figures["workers_2"]["seconds"]
    print(f"  speed-up with 2 workers: {ratio:.2f}x")
    print(f"  rerun with nothing new: {figures['rerun_nothing_new_s']:.2f} s")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
