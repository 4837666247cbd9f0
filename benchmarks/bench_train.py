"""Training throughput of a bundle and the share of each step spent waiting for data.

Parses the bundle's ``train.yaml`` as ``monai.bundle run`` would (same overrides), runs one
epoch to fill the preprocessing cache (``PersistentDataset``), then times ``--epochs`` more
epochs with Ignite's ``GET_BATCH_STARTED`` / ``GET_BATCH_COMPLETED`` events: the time between
them is waiting for data (cache read, random augmentation, collation); the rest of each
iteration is the step (CutMix, forward, loss, backward, optimizer). Validation is switched off
so that only training is timed.

Reports slices per second (real slices, padding excluded), seconds per step and the data-wait
share (target: under 10% with the cache warm). Prints a table and saves JSON. Usage:

python benchmarks/bench_train.py --data DATA [--epochs 2] [--out benchmarks/results]
    [KEY=VALUE bundle overrides, e.g. image_size=128 num_workers=2]

DATA is a folder written by ``ichbundles synth`` (``--scans 24`` is plenty); without ``--data``
one is generated in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from ignite.engine import Events
from monai.bundle import ConfigParser

from ichbundles.bundle.paths import bundle_config, bundle_path
from ichbundles.bundle.train import parse_overrides
from ichbundles.data.synthetic import generate_dataset


class StepTimer:
    """Per-iteration data-wait and step seconds, recorded by Ignite events."""

    def __init__(self) -> None:
        self.wait: list[float] = []
        self.step: list[float] = []
        self.slices: list[int] = []
        self.record = False
        self._fetch = self._got = 0.0

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.GET_BATCH_STARTED, self._fetch_started)
        engine.add_event_handler(Events.GET_BATCH_COMPLETED, self._fetch_done)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._step_done)

    def _fetch_started(self, engine) -> None:
        self._fetch = time.perf_counter()

    def _fetch_done(self, engine) -> None:
        self._got = time.perf_counter()

    def _step_done(self, engine) -> None:
        if not self.record:
            return
        self.wait.append(self._got - self._fetch)
        self.step.append(time.perf_counter() - self._got)
        self.slices.append(int(engine.state.batch["mask"].sum()))


def build_trainer(data: Path, output: Path, overrides: dict):
    root = bundle_path("ich_cnn_lstm")
    parser = ConfigParser()
    parser.read_config(bundle_config(root, "train.yaml"))
    settings = {
        "bundle_root": str(root),
        "dataset_dir": str(data),
        "output_dir": str(output),
        "tracking_enabled": False,
        "val_fraction": 0.0,
        **overrides,
    }
    parser.update(settings)
    # keep the LR scheduler and the trainer itself; drop validation, checkpoints and early stop
    handlers = parser.get("train#handlers")
    parser["train#handlers"] = [handlers[0]]
    return parser.get_parsed_content("train#trainer"), settings


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--data", type=Path, help="synthetic data folder (else 24 scans are made)")
    cli.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up one")
    cli.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    cli.add_argument("overrides", nargs="*", help="KEY=VALUE bundle config overrides")
    args = cli.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "data"
            generate_dataset(data, 24, size=256, seed=0, progress=False)
        trainer, settings = build_trainer(
            data.resolve(), Path(tmp) / "run", parse_overrides(args.overrides)
        )
        timer = StepTimer()
        timer.attach(trainer)
        trainer.state.max_epochs = 1
        started = time.perf_counter()
        trainer.run()  # fills the cache
        warmup_s = time.perf_counter() - started
        timer.record = True
        trainer.state.max_epochs = 1 + args.epochs  # Ignite resumes from epoch 1
        trainer.run()

    wait, step = sum(timer.wait), sum(timer.step)
    total = wait + step
    result = {
        "benchmark": "train",
        "bundle": "ich_cnn_lstm",
        "settings": {k: v for k, v in settings.items() if k not in ("bundle_root",)},
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "warmup_epoch_s": warmup_s,
        "timed_epochs": args.epochs,
        "iterations": len(timer.step),
        "slices": sum(timer.slices),
        "slices_per_s": sum(timer.slices) / total,
        "median_step_s": statistics.median(timer.step),
        "median_wait_s": statistics.median(timer.wait),
        "data_wait_share": wait / total,
    }
    print(
        f"warm-up epoch (cache fill) {warmup_s:.1f} s; then {result['iterations']} iterations, "
        f"{result['slices']} slices: {result['slices_per_s']:.1f} slices/s, "
        f"median step {result['median_step_s']:.3f} s, median data wait "
        f"{result['median_wait_s']:.3f} s, data-wait share {100 * result['data_wait_share']:.1f}%"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "_".join(args.overrides).replace("=", "-") or "default"
    path = args.out / f"train_{tag}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
