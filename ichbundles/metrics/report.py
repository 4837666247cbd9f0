"""Outputs of an evaluation: ``metrics.json``, ``report.md`` laid out like the papers' tables,
ROC and reliability PNGs, and the compact table printed by the command.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ichbundles.constants import CQ500_READER_COLUMNS, ICH_CLASSES, SUBTYPES
from ichbundles.metrics.calibration import reliability
from ichbundles.metrics.evaluate import LEVELS, SLICE_CI_NOTE, Evaluation
from ichbundles.metrics.predictions import PredictionError
from ichbundles.metrics.roc import roc_curve

__all__ = ["check_out", "format_table", "render_markdown", "write_outputs"]

# Row names: the CQ500 reader abbreviations ("ICH (any)" for any).
_SHORT = {
    cls: CQ500_READER_COLUMNS[cls] if cls in SUBTYPES else f"{CQ500_READER_COLUMNS[cls]} ({cls})"
    for cls in ICH_CLASSES
}
# Paper 001 Table I order: any first, then the subtypes with epidural last.
_TABLE_ORDER = (
    *(c for c in ICH_CLASSES if c not in SUBTYPES),
    *(c for c in SUBTYPES if c != "epidural"),
    "epidural",
)
_TITLE = {"slice_level": "Slice level", "scan_level": "Scan level"}
_MAX_CURVE_POINTS = 2000


def _f(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None, ci: list | None) -> str:
    if value is None:
        return "n/a"
    text = f"{100 * value:.2f}"
    return text if ci is None else f"{text} ({100 * ci[0]:.2f}–{100 * ci[1]:.2f})"


def _auc(entry: dict) -> str:
    if entry["auc"] is None:
        return "n/a"
    ci = entry["auc_ci"]
    return _f(entry["auc"]) + ("" if ci is None else f" ({ci[0]:.3f}–{ci[1]:.3f})")


def _mean_std(summary: dict | None, level: dict, figure: str, cls: str = "any") -> str:
    """``mean ± std`` over runs when several were given, else the single value."""
    if summary is None:
        value = level["per_class"][cls][figure] if figure != "weighted_log_loss" else level[figure]
        return _f(value, 5 if figure == "weighted_log_loss" else 3)
    stat = summary[figure] if figure == "weighted_log_loss" else summary["per_class"][cls][figure]
    if stat["mean"] is None:
        return "n/a"
    digits = 5 if figure == "weighted_log_loss" else 3
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _reasons(level: dict) -> list[str]:
    notes = []
    for cls in ICH_CLASSES:
        entry = level["per_class"][cls]
        for key, text in entry.items():
            if key.endswith("_reason") and not key.endswith("_ci_reason"):
                notes.append(f"- {cls} {key[: -len('_reason')]}: {text}")
    return notes


def render_markdown(metrics: dict) -> str:
    """The report: overall table (paper 000 Table 1), per-class AUC (paper 001 Table I),
    per-class figures with CIs and confusion matrices (paper 004 Table 2), calibration."""
    levels = [lv for lv in LEVELS if lv in metrics]
    summary = metrics.get("summary", {})
    n_runs = len(metrics.get("runs", [])) or 1
    runs_note = f"mean ± std over {n_runs} runs" if n_runs > 1 else "single run"
    lines = [
        "# ICH evaluation report",
        "",
        f"Labels: `{metrics['labels']}`; predictions: "
        + ", ".join(f"`{p}`" for p in metrics["predictions"])
        + f" ({runs_note}).",
        "",
        '## Overall, class "any" (as Table 1 of paper 000)',
        "",
        "| Metric | " + " | ".join(_TITLE[lv] for lv in levels) + " |",
        "|---|" + "---|" * len(levels),
    ]
    for label, figure in (
        ("accuracy", "accuracy"),
        ("f1 score", "f1"),
        ("precision", "precision"),
        ("recall", "sensitivity"),
        ("specificity", "specificity"),
        ("ROC AUC", "auc"),
        ("weighted log loss", "weighted_log_loss"),
    ):
        cells = [_mean_std(summary.get(lv), metrics[lv], figure) for lv in levels]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    lines += ["", "## AUC per class (as Table I of paper 001)", ""]
    lines += ["| Findings | " + " | ".join(_TITLE[lv] for lv in levels) + " |"]
    lines += ["|---|" + "---|" * len(levels)]
    for cls in _TABLE_ORDER:
        cells = []
        for lv in levels:
            entry = metrics[lv]["per_class"][cls]
            cells.append(
                _mean_std(summary[lv], metrics[lv], "auc", cls) if lv in summary else _auc(entry)
            )
        lines.append(f"| {_SHORT[cls]} | " + " | ".join(cells) + " |")
    mean_cells = []
    for lv in levels:
        if lv in summary:
            stat = summary[lv]["mean_auc"]
            mean_cells.append(
                "n/a" if stat["mean"] is None else f"{stat['mean']:.3f} ± {stat['std']:.3f}"
            )
        else:
            ci = metrics[lv].get("mean_auc_ci")
            text = _f(metrics[lv]["mean_auc"])
            mean_cells.append(text + ("" if ci is None else f" ({ci[0]:.3f}–{ci[1]:.3f})"))
    lines.append("| Mean | " + " | ".join(mean_cells) + " |")

    for lv in levels:
        level = metrics[lv]
        auc_method = level["auc_ci_method"].replace(f"; {SLICE_CI_NOTE}", "")
        lines += [
            "",
            f"## {_TITLE[lv]}: diagnostic performance (as Table 2 of paper 004)",
            "",
            f"{level['n']} cases ({level['n_units']} independent units). Percentages with 95% "
            f"CI; proportions: {level['proportion_ci_method']}; AUROC: {auc_method}"
            f"; threshold: {level['threshold_rule']}."
            + (" Figures of the first run." if n_runs > 1 else ""),
            "",
        ]
        if SLICE_CI_NOTE in level["auc_ci_method"]:
            lines += [f"**Note:** {SLICE_CI_NOTE}.", ""]
        lines += [
            "| Class | Sensitivity | Specificity | Precision | NPV | Accuracy | F1 | AUROC "
            "| Threshold | Pred. Pos | Pred. Neg | Ref. |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for cls in _TABLE_ORDER:
            e = level["per_class"][cls]
            c = e["confusion"]
            figures = [
                _pct(e[n], e[f"{n}_ci"])
                for n in ("sensitivity", "specificity", "precision", "npv", "accuracy", "f1")
            ]
            lines.append(
                f"| {_SHORT[cls]} | "
                + " | ".join(figures)
                + f" | {_auc(e)} | {_f(e['threshold'])} | {c['tp']} | {c['fn']} | Pos |"
            )
            lines.append("| |" + " |" * 8 + f" {c['fp']} | {c['tn']} | Neg |")
        lines += [
            "",
            f"Weighted log loss: {level['weighted_log_loss']:.5f}. Expected calibration "
            "error: "
            + ", ".join(f"{_SHORT[c]} {level['per_class'][c]['ece']:.4f}" for c in _TABLE_ORDER)
            + ".",
        ]
        notes = _reasons(level)
        if notes:
            lines += ["", "Undefined figures:", "", *notes]
    plots = [f"![{p}]({p})" for lv in levels for p in (f"roc_{lv}.png", f"reliability_{lv}.png")]
    lines += ["", "## Plots", "", *plots, ""]
    return "\n".join(lines)


def format_table(metrics: dict) -> str:
    """Compact table for the terminal: per class AUC [CI], sensitivity, specificity, F1."""
    out = []
    for lv in LEVELS:
        if lv not in metrics:
            continue
        level = metrics[lv]
        out.append(
            f"{_TITLE[lv]} (n={level['n']}): weighted log loss {level['weighted_log_loss']:.5f}, "
            f"mean AUC {_f(level['mean_auc'])}"
        )
        out.append(f"  {'class':<17} {'AUC [95% CI]':<22} {'sens':>6} {'spec':>6} {'F1':>6}")
        for cls in ICH_CLASSES:
            e = level["per_class"][cls]
            ci = e["auc_ci"]
            auc = _f(e["auc"]) + ("" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]")
            out.append(
                f"  {cls:<17} {auc:<22} {_f(e['sensitivity']):>6} {_f(e['specificity']):>6} "
                f"{_f(e['f1']):>6}"
            )
    return "\n".join(out)


def _plots(evaluation: Evaluation, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for lv, runs in evaluation.arrays.items():
        y, p = runs[0]
        level = evaluation.metrics[lv]
        fig, ax = plt.subplots(figsize=(5.5, 5.5))
        for c, cls in enumerate(ICH_CLASSES):
            auc = level["per_class"][cls]["auc"]
            if auc is None:
                ax.plot([], [], label=f"{cls} (AUC n/a)")
                continue
            fpr, tpr = roc_curve(y[:, c], p[:, c])
            keep = np.unique(np.linspace(0, len(fpr) - 1, _MAX_CURVE_POINTS).astype(int))
            ax.plot(fpr[keep], tpr[keep], label=f"{cls} (AUC {auc:.3f})")
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
        ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"ROC, {_TITLE[lv].lower()}")
        ax.legend(loc="lower right", fontsize=8)
        fig.savefig(folder / f"roc_{lv}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(5.5, 5.5))
        for c, cls in enumerate(ICH_CLASSES):
            table = reliability(y[:, c], p[:, c])
            filled = table["count"] > 0
            ece = level["per_class"][cls]["ece"]
            ax.plot(
                table["mean_prob"][filled],
                table["frequency"][filled],
                marker="o",
                ms=3,
                label=f"{cls} (ECE {ece:.3f})",
            )
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
        ax.set(
            xlabel="mean predicted probability",
            ylabel="observed frequency",
            title=f"Reliability, {_TITLE[lv].lower()}",
            xlim=(0, 1),
            ylim=(0, 1),
        )
        ax.legend(loc="upper left", fontsize=8)
        fig.savefig(folder / f"reliability_{lv}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)


def check_out(out: str | os.PathLike) -> Path:
    """``out`` as a Path after checking it can be an output folder (an existing one is fine).

    Raises:
        PredictionError: ``out`` or a parent of it is a file.
    """
    out = Path(out)
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                what = "output folder" if path == out else f"parent of output folder {out}"
                raise PredictionError(path, f"{what} is a file, not a folder")
            break
    return out


def write_outputs(evaluation: Evaluation, out: str | os.PathLike) -> list[Path]:
    """Write ``metrics.json``, ``report.md`` and the PNGs into ``out``, all or nothing.

    Everything is written to a temporary folder beside ``out`` first; then whole folders are
    swapped (the old ``out`` renamed away, the new one renamed in, the old one deleted), so
    ``out`` always holds exactly one run's outputs: files of an earlier run do not survive.

    Returns:
        The paths written.

    Raises:
        PredictionError: ``out`` is a file, or the location is not writable (one line naming
            the path); nothing is changed then.
    """
    out = check_out(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as error:
        raise PredictionError(out, f"cannot write here ({_reason(error)})") from None
    new, old = work / "new", work / "old"
    try:
        new.mkdir()
        (new / "metrics.json").write_text(
            json.dumps(evaluation.metrics, indent=2, allow_nan=False) + "\n"
        )
        (new / "report.md").write_text(render_markdown(evaluation.metrics))
        _plots(evaluation, new)
        names = sorted(p.name for p in new.iterdir())
        if out.is_dir():
            os.rename(out, old)
            try:
                os.rename(new, out)
            except OSError:
                os.rename(old, out)  # put the earlier run back
                raise
        else:
            os.rename(new, out)
    except OSError as error:
        raise PredictionError(out, f"cannot write outputs ({_reason(error)})") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [out / name for name in names]


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__
