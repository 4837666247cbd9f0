from __future__ import annotations

import json

import pytest

from ichbundles.metrics import report
from ichbundles.metrics.evaluate import evaluate_files
from ichbundles.metrics.report import format_table, render_markdown, write_outputs


@pytest.fixture
def evaluation(slice_files):
    return evaluate_files(
        [slice_files["predictions"]],
        labels=slice_files["labels"],
        slice_map=slice_files["slice_map"],
        n_bootstrap=50,
    )


def test_writes_all_outputs(evaluation, tmp_path):
    written = write_outputs(evaluation, tmp_path / "results" / "out")
    names = sorted(p.name for p in written)
    assert names == [
        "metrics.json",
        "reliability_scan_level.png",
        "reliability_slice_level.png",
        "report.md",
        "roc_scan_level.png",
        "roc_slice_level.png",
    ]
    out = tmp_path / "results" / "out"
    assert json.loads((out / "metrics.json").read_text()) == evaluation.metrics
    for name in names:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["out"]  # no temporary folder left


def test_failure_writes_nothing(evaluation, tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(report, "_plots", broken)
    with pytest.raises(RuntimeError):
        write_outputs(evaluation, tmp_path / "results" / "out")
    assert list((tmp_path / "results").iterdir()) == []


def test_existing_folder_gets_files_replaced(evaluation, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text("old")
    (out / "keep.txt").write_text("x")
    write_outputs(evaluation, out)
    assert json.loads((out / "metrics.json").read_text())["schema"] == "ichbundles.metrics/v1"
    assert (out / "keep.txt").exists()


def test_markdown_has_the_papers_tables(evaluation):
    text = render_markdown(evaluation.metrics)
    assert "Table 1 of paper 000" in text and "Table I of paper 001" in text
    assert text.count("Table 2 of paper 004") == 2
    assert "| ICH (any) |" in text and "| Mean |" in text and "| Pos |" in text


def test_compact_table_lists_every_class(evaluation):
    text = format_table(evaluation.metrics)
    assert "weighted log loss" in text
    for cls in ("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "any"):
        assert text.count(cls) == 2  # slice and scan level
