from __future__ import annotations

import json

import pytest

from ichbundles.metrics import report
from ichbundles.metrics.evaluate import SLICE_CI_NOTE, evaluate_files
from ichbundles.metrics.predictions import PredictionError
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


def test_existing_folder_is_replaced_whole(evaluation, tmp_path):
    # Was "gets files replaced" (keep.txt survived); now the folder is swapped as a whole so an
    # earlier run's files (plots of other levels, stray files) cannot sit beside a new run.
    tmp_path = tmp_path / "results"  # beside the fixture files
    tmp_path.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text("old")
    (out / "keep.txt").write_text("x")
    (out / "roc_old_level.png").write_text("x")
    written = write_outputs(evaluation, out)
    assert json.loads((out / "metrics.json").read_text())["schema"] == "ichbundles.metrics/v1"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)
    assert not (out / "keep.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # old copy and temp folder gone


def test_failure_keeps_the_earlier_run(evaluation, tmp_path, monkeypatch):
    tmp_path = tmp_path / "results"  # beside the fixture files
    tmp_path.mkdir()
    out = tmp_path / "out"
    write_outputs(evaluation, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(report, "_plots", broken)
    with pytest.raises(RuntimeError):
        write_outputs(evaluation, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("where", ["out", "parent"])
def test_out_that_is_a_file_is_a_prediction_error(evaluation, tmp_path, where):
    tmp_path = tmp_path / "results"  # beside the fixture files
    tmp_path.mkdir()
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    out = blocker if where == "out" else blocker / "out"
    with pytest.raises(PredictionError, match="is a file, not a folder") as info:
        write_outputs(evaluation, out)
    assert str(info.value).startswith(str(blocker)) and "\n" not in str(info.value)
    assert blocker.read_text() == "not a folder"
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_unwritable_location_is_a_prediction_error(evaluation, tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(report.tempfile, "mkdtemp", denied)
    out = tmp_path / "out"
    with pytest.raises(PredictionError, match="cannot write here \\(Permission denied\\)") as info:
        write_outputs(evaluation, out)
    assert str(info.value).startswith(str(out)) and "\n" not in str(info.value)


def test_slice_ci_note_without_slice_map(slice_files):
    evaluation = evaluate_files(
        [slice_files["predictions"]], labels=slice_files["labels"], n_bootstrap=20
    )
    method = evaluation.metrics["slice_level"]["auc_ci_method"]
    assert (
        method.startswith("bootstrap percentile, 20 resamples of rows") and SLICE_CI_NOTE in method
    )
    text = render_markdown(evaluation.metrics)
    notes = [line for line in text.splitlines() if "treat slices as independent" in line]
    assert notes == [f"**Note:** {SLICE_CI_NOTE}."]
    assert "--slice-map" in notes[0] and "too narrow" in notes[0]


def test_no_slice_ci_note_with_slice_map(evaluation):
    for level in ("slice_level", "scan_level"):
        assert SLICE_CI_NOTE not in evaluation.metrics[level]["auc_ci_method"]
    assert "independent" not in render_markdown(evaluation.metrics).replace("independent units", "")


def test_row_names_come_from_the_constants(evaluation):
    text = render_markdown(evaluation.metrics)
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    table_i = rows[rows.index("Findings") + 1 : rows.index("Mean")]
    assert table_i == ["ICH (any)", "IPH", "IVH", "SAH", "SDH", "EDH"]


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
