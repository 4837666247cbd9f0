"""Training throughput of each bundle's CPU configuration, before and after the speed-ups.

For every bundle asked for, parses its ``train.yaml`` as ``monai.bundle run`` would (same
overrides), runs one epoch to fill the preprocessing cache (``PersistentDataset``), then times
``--epochs`` more epochs with Ignite's ``GET_BATCH_STARTED`` / ``GET_BATCH_COMPLETED`` events:
the time between them is waiting for data (cache read, random augmentation, collation); the rest
of each iteration is the step (CutMix, forward, loss, backward, optimizer). Validation is
switched off so that only training is timed.

Each bundle runs twice in the same process on the same cache: ``before`` (float32, contiguous
convolution weights: the configuration before ``precision`` and ``channels_last`` existed) and
``after`` (the bundle's defaults, ``precision=auto`` and ``channels_last=True``), so their ratio
is measured under the same load. The model's arithmetic rate is set beside a plain matmul's on
the same machine in the same run: FLOPs of one training step are counted with
``torch.utils.flop_counter`` (forward and backward), divided by the measured step time.

Reports slices per second (real slices, padding excluded), seconds per step, the data-wait share
and FLOP/s. Prints a table and saves JSON. Usage:

python benchmarks/bench_train.py --data DATA [--bundles ich_cnn_lstm ...] [--epochs 1]
    [--out benchmarks/results] [KEY=VALUE overrides for every bundle, e.g. num_workers=1]

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
from torch.utils.flop_counter import FlopCounterMode

from ichbundles.bundle.paths import bundle_config, bundle_path
from ichbundles.bundle.train import parse_overrides
from ichbundles.data.synthetic import generate_dataset

BUNDLES = ("ich_cnn_lstm", "ich_attention_mil", "ich_adjacent_slices")
#: The configuration before the speed-ups, and the bundles' defaults.
VARIANTS = {
    "before": {"precision": "float32", "channels_last": False},
    "after": {"precision": "auto", "channels_last": True},
}


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
        self.slices.append(_slices(engine.state.batch))


def _slices(batch) -> int:
    """Real slices in a batch: the mask's count for scans, the images' for slice batches."""
    if isinstance(batch, dict) and "mask" in batch:
        return int(batch["mask"].sum())
    image = batch["image"] if isinstance(batch, dict) else batch[0]
    return int(image.shape[:-3].numel())


def build_trainer(bundle: str, data: Path, output: Path, overrides: dict):
    root = bundle_path(bundle)
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


class _StepFlops:
    """Counts the FLOPs of one training step (forward and backward) the first time it runs."""

    def __init__(self) -> None:
        self.flops: int | None = None
        self.slices = 0

    def attach(self, engine) -> None:
        original = engine._process_function

        def counted(engine_, batch):
            if self.flops is not None:
                return original(engine_, batch)
            with FlopCounterMode(display=False) as counter:
                output = original(engine_, batch)
            self.flops = counter.get_total_flops()
            self.slices = _slices(batch)
            return output

        engine._process_function = counted


def matmul_flops_per_s(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a plain ``n x n`` matmul in ``dtype`` (best of ``repeats``)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def measure(bundle: str, data: Path, run_dir: Path, overrides: dict, epochs: int) -> dict:
    trainer, settings = build_trainer(bundle, data, run_dir, overrides)
    timer = StepTimer()
    timer.attach(trainer)
    trainer.state.max_epochs = 1
    started = time.perf_counter()
    trainer.run()  # fills the cache
    warmup_s = time.perf_counter() - started
    flops = _StepFlops()
    flops.attach(trainer)
    trainer.state.max_epochs = 2  # Ignite resumes from epoch 1: one counted (untimed) epoch
    trainer.run()
    timer.record = True
    trainer.state.max_epochs = 2 + epochs
    trainer.run()
    wait, step = sum(timer.wait), sum(timer.step)
    total = wait + step
    slices_per_s = sum(timer.slices) / total
    flops_per_slice = flops.flops / max(flops.slices, 1)
    return {
        "settings": {k: v for k, v in settings.items() if k != "bundle_root"},
        "warmup_epoch_s": warmup_s,
        "iterations": len(timer.step),
        "slices": sum(timer.slices),
        "slices_per_s": slices_per_s,
        "median_step_s": statistics.median(timer.step),
        "median_wait_s": statistics.median(timer.wait),
        "data_wait_share": wait / total,
        "train_flops_per_slice": flops_per_slice,
        # arithmetic rate over the whole iteration, data waits included
        "model_flops_per_s": flops_per_slice * slices_per_s,
    }


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--data", type=Path, help="synthetic data folder (else 24 scans are made)")
    cli.add_argument("--bundles", nargs="+", default=list(BUNDLES), choices=BUNDLES)
    cli.add_argument("--epochs", type=int, default=1, help="timed epochs after the warm-up one")
    cli.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    cli.add_argument("overrides", nargs="*", help="KEY=VALUE overrides for every bundle")
    args = cli.parse_args()

    result = {
        "benchmark": "train",
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "matmul_flops_per_s": {
            "float32": matmul_flops_per_s(torch.float32),
            "bfloat16": matmul_flops_per_s(torch.bfloat16),
        },
        "bundles": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "data"
            generate_dataset(data, 24, size=256, seed=0, progress=False)
        for bundle in args.bundles:
            runs = {}
            for name, variant in VARIANTS.items():
                overrides = {**parse_overrides(args.overrides), **variant}
                # one run folder per bundle: the second variant reads the cache the first wrote
                runs[name] = measure(
                    bundle, data.resolve(), Path(tmp) / bundle, overrides, args.epochs
                )
            runs["speed_up"] = runs["after"]["slices_per_s"] / runs["before"]["slices_per_s"]
            result["bundles"][bundle] = runs

    matmul = result["matmul_flops_per_s"]
    print(
        f"plain 2048x2048 matmul: {matmul['float32'] / 1e9:.0f} GFLOP/s float32, "
        f"{matmul['bfloat16'] / 1e9:.0f} GFLOP/s bfloat16"
    )
    print("| bundle | variant | slices/s | step s | data wait | model GFLOP/s | of matmul |")
    print("|---|---|---|---|---|---|---|")
    for bundle, runs in result["bundles"].items():
        for name in VARIANTS:
            run = runs[name]
            reference = matmul["float32" if name == "before" else "bfloat16"]
            print(
                f"| {bundle} | {name} | {run['slices_per_s']:.1f} | {run['median_step_s']:.2f} | "
                f"{100 * run['data_wait_share']:.0f}% | {run['model_flops_per_s'] / 1e9:.0f} | "
                f"{100 * run['model_flops_per_s'] / reference:.0f}% |"
            )
        print(f"| {bundle} | after / before | {runs['speed_up']:.2f}x | | | | |")
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "_".join(args.overrides).replace("=", "-") or "default"
    path = args.out / f"train_{tag}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
