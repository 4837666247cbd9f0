"""The ``ichbundles evaluate`` sub-command (wired into ``ichbundles.cli`` by the lead)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ichbundles.constants import ICH_CLASSES

__all__ = ["add_evaluate_parser", "parse_thresholds", "run"]


def parse_thresholds(text: str) -> dict[str, float]:
    """Parse ``any=0.5,epidural=0.3`` into ``{"any": 0.5, "epidural": 0.3}``.

    Raises:
        argparse.ArgumentTypeError: unknown class, not a number, or outside [0, 1].
    """
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in ICH_CLASSES:
            raise argparse.ArgumentTypeError(
                f"expected CLASS=VALUE with CLASS one of {', '.join(ICH_CLASSES)}, got {item!r}"
            )
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"threshold {value!r} is not a number") from None
        if not 0.0 <= number <= 1.0:
            raise argparse.ArgumentTypeError(f"threshold {number} is outside [0, 1]")
        out[name] = number
    return out


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not in (0, 1]")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` sub-command; its ``run`` default takes the Namespace."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score predictions: log loss, AUC with CI, sensitivity/specificity, calibration",
        description="Score slice (RSNA 'ID,Label') or scan predictions against RSNA labels, "
        "CQ500 reads or per-scan labels; write metrics.json, report.md and plots. Slice "
        "predictions are aggregated to scans by the maximum over slices when a slice map says "
        "which scan each slice is in. With --mil instead: average the mil_metrics.json files of "
        "ich_attention_mil evaluations into the Table 1 layout of paper 000.",
    )
    parser.add_argument(
        "--predictions",
        nargs="+",
        action="extend",
        type=Path,
        metavar="CSV",
        help="prediction file(s); several give mean ± std over runs",
    )
    parser.add_argument(
        "--mil",
        nargs="+",
        action="extend",
        type=Path,
        metavar="JSON",
        help="mil_metrics.json file(s) of ich_attention_mil's evaluate.yaml (seeds, variants): "
        "mean ± std per model and setting, like Table 1 of paper 000",
    )
    truth = parser.add_mutually_exclusive_group()
    truth.add_argument("--labels", type=Path, metavar="CSV", help="RSNA slice labels (ID,Label)")
    truth.add_argument("--reads", type=Path, metavar="CSV", help="CQ500 reads.csv (majority)")
    truth.add_argument(
        "--scan-labels", type=Path, metavar="CSV", help="per-scan labels (key + 6 class columns)"
    )
    parser.add_argument(
        "--slice-map",
        type=Path,
        metavar="FILE",
        help="csv/parquet with sop_instance_uid and the scan key (or path), e.g. the "
        "'ichbundles index' table: scores scans from slice predictions",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("evaluation"), help="output folder (default evaluation/)"
    )
    parser.add_argument(
        "--bootstrap",
        type=_count,
        default=1000,
        metavar="N",
        help="bootstrap resamples for AUC and F1 CIs (default 1000; 0: DeLong AUC CIs)",
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    rule = parser.add_mutually_exclusive_group()
    rule.add_argument(
        "--threshold",
        type=parse_thresholds,
        default={},
        metavar="CLASS=P,...",
        help="decision thresholds per class, e.g. any=0.5,epidural=0.3 (default 0.5)",
    )
    rule.add_argument(
        "--target-sensitivity",
        type=_fraction,
        metavar="S",
        help="choose each class's threshold for this sensitivity, e.g. 0.95 for triage",
    )
    parser.add_argument("--bins", type=_count, default=10, help="calibration bins (default 10)")
    parser.set_defaults(run=run, evaluate_parser=parser)
    return parser


def _run_mil(args: argparse.Namespace) -> int:
    """Average ``mil_metrics.json`` files into Table 1; write and print it."""
    from ichbundles.bundle.report import write_atomic
    from ichbundles.metrics.predictions import PredictionError
    from ichbundles.metrics.report import check_out
    from ichbundles.mil.evaluation import mil_table_markdown, read_mil_results, summarise_mil_runs

    runs = []
    for path in args.mil:
        try:
            runs.append(read_mil_results(path))
        except (ValueError, KeyError) as error:
            raise PredictionError(path, str(error).removeprefix(f"{path}: ")) from None
    check_out(args.out)
    try:
        summary = summarise_mil_runs(runs)
    except ValueError as error:
        raise PredictionError(args.mil[0], str(error)) from None
    summary["runs"] = [str(path) for path in args.mil]
    table = mil_table_markdown(summary)
    write_atomic(args.out / "mil_summary.json", json.dumps(summary, indent=2) + "\n")
    write_atomic(args.out / "mil_table.md", table)
    print(table)
    print(f"wrote mil_summary.json, mil_table.md to {args.out}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the outputs and print the compact table; returns the exit code.

    Raises:
        PredictionError: bad prediction files or a mismatch with the labels.
        LabelError: bad label files.
    """
    from ichbundles.data.labels import LabelError
    from ichbundles.metrics.evaluate import evaluate_files
    from ichbundles.metrics.predictions import PredictionError
    from ichbundles.metrics.report import check_out, format_table, write_outputs

    parser = args.evaluate_parser
    if args.mil:
        if args.predictions or args.labels or args.reads or args.scan_labels or args.slice_map:
            parser.error("--mil takes no --predictions, labels or --slice-map")
        return _run_mil(args)
    if not args.predictions:
        parser.error("the following arguments are required: --predictions (or --mil)")
    if not (args.labels or args.reads or args.scan_labels):
        parser.error("one of the arguments --labels --reads --scan-labels is required")
    for path in (args.labels, args.reads, args.scan_labels):
        if path is not None and not os.path.isfile(path):
            raise LabelError(path, "no such file")
    for path in [*args.predictions, *([args.slice_map] if args.slice_map else [])]:
        if not os.path.isfile(path):
            raise PredictionError(path, "no such file")
    if args.bins < 1:
        raise PredictionError(args.out, "--bins must be at least 1")
    check_out(args.out)  # fail before a long evaluation, not after
    evaluation = evaluate_files(
        args.predictions,
        labels=args.labels,
        reads=args.reads,
        scan_labels=args.scan_labels,
        slice_map=args.slice_map,
        thresholds=args.threshold,
        target_sensitivity=args.target_sensitivity,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        n_bins=args.bins,
    )
    written = write_outputs(evaluation, args.out)
    print(format_table(evaluation.metrics))
    timing = evaluation.metrics["timing_s"]
    print(f"parse {timing['parse']:.2f} s, metrics {timing['metrics']:.2f} s")
    print(f"wrote {', '.join(p.name for p in written)} to {args.out}")
    return 0
