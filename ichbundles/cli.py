"""The ``ichbundles`` command line: one sub-command per job; bad input exits 2 with one line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ichbundles import __version__
from ichbundles.data.synthetic import LAYOUTS, MIN_SIZE, QUIRK_CHOICES, QUIRKS
from ichbundles.metrics.cli import add_evaluate_parser

__all__ = ["main", "parse_args"]

EXIT_BAD_INPUT = 2


class BadInputError(Exception):
    """Bad input found by the command line itself (the library raises its own errors)."""


def _inspect(args: argparse.Namespace) -> int:
    from ichbundles.io import read_series

    series = read_series(args.path, series_uid=args.series_uid)
    summary = series.summary()
    if args.json:
        summary["sop_instance_uids"] = list(series.sop_instance_uids)
        summary["z_mm"] = [round(float(z), 3) for z in series.z_mm]
        print(json.dumps(summary, indent=2))
        return 0
    hu = summary["hu"]
    z0, z1 = summary["z_range_mm"]
    spacing = summary["spacing_mm"]
    gaps = ", ".join(str(g) for g in summary["gaps"]) or "none"
    lines = [
        f"source     {summary['source']}",
        f"study      {summary['study_instance_uid'] or '-'}",
        f"series     {summary['series_instance_uid']}",
        f"slices     {' x '.join(map(str, summary['shape']))} ({summary['plane']})",
        f"spacing    z {spacing[0]:.3f} mm, rows {spacing[1]:.3f} mm, columns {spacing[2]:.3f} mm",
        f"z range    {z0:.2f} .. {z1:.2f} mm along the slice normal",
        f"HU         min {hu['min']:.0f}, 1% {hu['p1']:.0f}, median {hu['median']:.0f}, "
        f"99% {hu['p99']:.0f}, max {hu['max']:.0f}",
        f"tilt       {summary['tilt_degrees']:.2f} degrees; gaps before slices: {gaps}",
        f"warnings   {len(summary['warnings'])}",
    ]
    lines += [f"  - {warning}" for warning in summary["warnings"]]
    print("\n".join(lines))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from ichbundles.data.synthetic import generate_dataset

    try:
        manifest = generate_dataset(
            args.out,
            args.scans,
            size=args.size,
            seed=args.seed,
            workers=args.workers,
            quirks=tuple(args.quirks),
            thin=args.thin,
            thin_fraction=args.thin_fraction,
            nifti=args.nifti,
            layout=args.layout,
            preview=args.preview,
            progress=not args.quiet,
            stress=args.stress,
        )
    except ValueError as error:  # the generator's one-line message on bad arguments
        raise BadInputError(str(error)) from None
    print(f"wrote {args.scans} synthetic scans to {args.out} (manifest: {manifest})")
    if args.preview:
        print(f"preview: {args.preview}")
    return 0


def _index(args: argparse.Namespace) -> int:
    from ichbundles.data.index import INDEX_NAME, build_index

    root = Path(args.root)
    if not root.is_dir():
        raise BadInputError(f"{root}: not a folder")
    if not any(path.is_file() for path in root.rglob("*")):
        raise BadInputError(f"{root}: no files to index")
    out = Path(args.out) if args.out else root / INDEX_NAME
    table = build_index(root, out, workers=args.workers, progress=not args.quiet)
    problems = int((table["problem"] != "").sum())
    series = table.loc[table["problem"] == "", "series_instance_uid"].nunique()
    print(f"indexed {len(table)} files ({series} series, {problems} with problems) -> {out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from ichbundles.bundle.train import train_bundle

    try:
        best = train_bundle(
            args.bundle, args.data, args.output, args.epochs, args.overrides, args.resume
        )
    except ValueError as error:  # a malformed key=value override
        raise BadInputError(str(error)) from None
    output = Path(args.output).resolve()
    print(f"best checkpoint: {best}")
    print(f"MLflow runs:     mlflow ui --backend-store-uri sqlite:///{output}/mlruns.db")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ichbundles.demo import run_demo

    run_demo(
        args.output,
        train_scans=args.scans,
        test_scans=args.test_scans,
        size=args.size,
        epochs=args.epochs,
        image_size=args.image_size,
        seed=args.seed,
        test_seed=args.test_seed,
        bundle=args.bundle,
        overrides=args.overrides,
    )
    return 0


def _overrides(items: Sequence[str]) -> dict:
    from ichbundles.bundle.train import parse_overrides

    try:
        return parse_overrides(items)
    except ValueError as error:
        raise BadInputError(str(error)) from None


def _predict(args: argparse.Namespace) -> int:
    from ichbundles.bundle.predict import exit_code, predict_series

    overrides = _overrides(args.overrides)
    try:
        results = predict_series(
            args.bundle, args.checkpoint, args.input, args.output, overrides=overrides
        )
    except ValueError as error:  # a model the bundle cannot predict with; series fail one by one
        raise BadInputError(str(error)) from None
    for result in results:
        if not result.ok:
            print(f"error: {result.error}", file=sys.stderr)
    done = sum(result.ok for result in results)
    print(f"{done} of {len(results)} series predicted -> {args.output}")
    return exit_code(results)


def _export(args: argparse.Namespace) -> int:
    from ichbundles.bundle.export import ExportMismatchError, export_model

    overrides = _overrides(args.overrides)
    try:
        out = export_model(args.bundle, args.checkpoint, args.format, args.out, overrides=overrides)
    except (ExportMismatchError, ImportError) as error:  # failed check or extra: not bad input
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:  # a checkpoint or overrides that do not fit the bundle
        raise BadInputError(str(error)) from None
    print(out)
    return 0


def _bundles(args: argparse.Namespace) -> int:
    from ichbundles.bundle.catalog import bundle_summaries, format_bundle_table
    from ichbundles.bundle.paths import BUNDLES_DIR

    try:
        summaries = bundle_summaries()
    except ValueError as error:  # a metadata.json that is not JSON
        raise BadInputError(str(error)) from None
    if args.json:
        print(json.dumps(summaries, indent=2))
        return 0
    print(format_bundle_table(summaries))
    print(f"\nbundle folders under {BUNDLES_DIR}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ichbundles",
        description="Intracranial hemorrhage detection on head CT: data, bundles, evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="the shipped model on fresh phantoms, then a short training, in minutes",
        description="Part 1: score the model ich_cnn_lstm ships on held-out synthetic scans "
        "(scan-level AUC with its 95% CI, ROC plot, a picture of one scan with a hemorrhage). "
        "Part 2: train ich_cnn_lstm on CPU for a few minutes (tracked in MLflow) and score it on "
        "the same scans. Says where every output is.",
    )
    demo.add_argument("--output", type=Path, default=Path("ichbundles_demo"), help="folder")
    demo.add_argument("--scans", type=int, default=32, help="training scans (default 32)")
    demo.add_argument("--test-scans", type=int, default=24, help="held-out scans (default 24)")
    demo.add_argument("--size", type=int, default=256, help="synthetic image size (default 256)")
    demo.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    demo.add_argument("--image-size", type=int, default=128, help="network input (default 128)")
    demo.add_argument("--seed", type=int, default=0, help="training data seed (default 0)")
    demo.add_argument(
        "--test-seed", type=int, default=2026, help="held-out data seed (default 2026)"
    )
    demo.add_argument(
        "--bundle",
        default="ich_cnn_lstm",
        help="ich_cnn_lstm (default) or a copy of its folder",
    )
    demo.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="overrides of part 2's training"
    )
    demo.set_defaults(run=_demo)

    bundles = commands.add_parser(
        "bundles",
        help="list the bundles: version, paper and shipped model",
        description="List the installed bundles with their version, paper, and the model each "
        "ships (file size and scan-level 'any' AUC with its 95% CI), and where they are.",
    )
    bundles.add_argument("--json", action="store_true", help="print JSON (a list of bundles)")
    bundles.set_defaults(run=_bundles)

    inspect = commands.add_parser(
        "inspect",
        help="show what read_series sees in a CT series",
        description="Read a CT series (DICOM folder or file, NIfTI, NRRD, MHA) and show its "
        "slice order, geometry, HU range and every fix applied or file skipped.",
    )
    inspect.add_argument("path", help="DICOM folder or file, or a volume file")
    inspect.add_argument("--series-uid", help="SeriesInstanceUID to read from a mixed folder")
    inspect.add_argument("--json", action="store_true", help="print JSON (with per-slice UIDs)")
    inspect.set_defaults(run=_inspect)

    synth = commands.add_parser(
        "synth",
        help="generate synthetic head-CT series with hemorrhages",
        description="Generate synthetic head CT series (DICOM) with per-slice hemorrhage labels, "
        "RSNA- and CQ500-format label files, and optional archive quirks.",
    )
    synth.add_argument("--out", required=True, type=Path, help="output folder")
    synth.add_argument("--scans", type=int, default=10, help="number of scans (default 10)")
    synth.add_argument(
        "--size",
        type=int,
        default=256,
        help=f"image size in pixels, {MIN_SIZE} or more (default 256)",
    )
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    synth.add_argument(
        "--quirks",
        nargs="*",
        default=[],
        metavar="QUIRK",
        choices=QUIRK_CHOICES,
        help="archive quirks to write, or 'all': " + ", ".join(QUIRKS),
    )
    thickness = synth.add_mutually_exclusive_group()
    thickness.add_argument(
        "--thin", action="store_true", help="thin slices (0.625-2.5 mm, up to 320)"
    )
    thickness.add_argument(
        "--thin-fraction",
        type=float,
        default=0.0,
        help="share of thin-sliced scans in a mixed set, 0-1 (default 0)",
    )
    synth.add_argument("--nifti", action="store_true", help="also write NIfTI volumes")
    synth.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="folders",
        help="folder layout: one folder per series (default), RSNA 2019 or CQ500",
    )
    synth.add_argument("--preview", type=Path, help="write a PNG grid of windowed slices")
    from ichbundles.data.synthetic.stress import FACTORS  # its names for the help

    synth.add_argument(
        "--stress",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="robustness set: these factors pushed outside their normal range, the rest of "
        "each scan unchanged (e.g. hu_offset=15 spacing=7); names: " + ", ".join(FACTORS),
    )
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(run=_synth)

    index = commands.add_parser(
        "index",
        help="build a DICOM header index of a data folder (resumable)",
        description="Read the headers (no pixel data, no patient data) of every file under a "
        "folder in parallel and write them as a table; an interrupted run resumes.",
    )
    index.add_argument("root", help="data folder, e.g. RSNA stage_2_train/")
    index.add_argument("--out", help="index file (default ROOT/ichbundles_index.parquet)")
    index.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    index.add_argument("--quiet", action="store_true", help="no progress bar")
    index.set_defaults(run=_index)

    add_evaluate_parser(commands)

    train = commands.add_parser(
        "train",
        help="train a bundle (wraps python -m monai.bundle run)",
        description="Train a bundle on a data folder: its train.yaml, or the training stages its "
        "metadata.json lists (ich_attention_mil: the Att-CNN, then VGPMIL on its features; "
        "ich_adjacent_slices: stage 1, one stage 1 model per fold, descriptors, fusion); the "
        "best checkpoint is left at OUTPUT/models/model.pt and the runs are tracked in "
        "OUTPUT/mlruns.db (MLflow), a multi-stage training's nested under one parent run.",
    )
    train.add_argument("bundle", help="bundle name under bundles/ or a bundle folder")
    train.add_argument("--data", required=True, type=Path, help="dataset folder (dataset_dir)")
    train.add_argument("--output", type=Path, default=Path("runs"), help="output folder")
    train.add_argument("--epochs", type=int, help="training epochs (default: the config's)")
    train.add_argument(
        "--resume",
        action="store_true",
        help="skip the stages that finished (OUTPUT/training_stages.json) and continue the "
        "interrupted one from its last checkpoint",
    )
    train.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. batch_size=4"
    )
    train.set_defaults(run=_train)

    predict = commands.add_parser(
        "predict",
        help="predict series with a trained bundle: report JSON and RSNA-style CSV",
        description="Write one ichbundles.report/v1 JSON per series, predictions.csv (RSNA "
        "ID,Label) and scan_predictions.csv; a bad series is reported and the others go on.",
    )
    predict.add_argument("bundle", help="bundle name under bundles/ or a bundle folder")
    predict.add_argument(
        "--checkpoint",
        type=Path,
        help="a model of your own (OUTPUT/models/model.pt of ichbundles train); default: the "
        "model the bundle ships (BUNDLE/models/model.pt). It carries the network and "
        "preprocessing settings it was trained with",
    )
    predict.add_argument("--input", required=True, nargs="+", help="series (folders or files)")
    predict.add_argument("--output", type=Path, default=Path("predictions"), help="output folder")
    predict.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="inference config overrides, e.g. use_fusion=false; the checkpoint's own settings "
        "(image_size, backbone, ...) need none, and one that contradicts them is an error "
        "(put them before --input, which takes every value after it)",
    )
    predict.set_defaults(run=_predict)

    export = commands.add_parser(
        "export",
        help="export a trained bundle to TorchScript or ONNX (checked against eager)",
    )
    export.add_argument("bundle", help="bundle name under bundles/ or a bundle folder")
    export.add_argument(
        "--checkpoint",
        type=Path,
        help="a model of your own; default: the model the bundle ships (BUNDLE/models/model.pt)",
    )
    export.add_argument("--format", required=True, choices=("torchscript", "onnx"))
    export.add_argument(
        "--out",
        type=Path,
        help="output file (default: beside --checkpoint, or BUNDLE.ts / BUNDLE.onnx in the "
        "current folder for the shipped model)",
    )
    export.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, e.g. use_fusion=false; the checkpoint's own settings need none",
    )
    export.set_defaults(run=_export)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; ``KEY=VALUE`` words after options go to the overrides.

    argparse gives a trailing ``nargs="*"`` positional nothing once options came between, so
    unknown ``KEY=VALUE`` words are added to the command's overrides here.
    """
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 success, 2 bad input)."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # pydicom logs every damaged file it meets; the reader reports those in its warnings.
        logging.getLogger("pydicom").setLevel(logging.ERROR)
    from ichbundles.data.labels import LabelError
    from ichbundles.io import SeriesReadError
    from ichbundles.metrics.predictions import PredictionError

    try:
        return args.run(args)
    except (SeriesReadError, LabelError, PredictionError, BadInputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:  # paths that cannot be read or written: bad input too
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
