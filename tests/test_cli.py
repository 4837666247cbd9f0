"""The ``ichbundles`` command line: output, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pydicom
import pytest

from ichbundles.cli import main


def test_inspect_prints_a_summary(pydicom_file, capsys):
    path = pydicom_file("CT_small.dcm")
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert pydicom.dcmread(path).SeriesInstanceUID in out
    assert "1 x 128 x 128 (axial)" in out


def test_inspect_json(pydicom_file, capsys):
    path = pydicom_file("dicomdirtests")
    assert main(["inspect", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_slices"] == 5
    assert len(summary["sop_instance_uids"]) == 5
    assert summary["z_mm"] == sorted(summary["z_mm"])
    assert summary["plane"] == "axial"
    assert any("localizer" in w for w in summary["warnings"])


@pytest.mark.parametrize("name", ["MR_small.dcm", "rtplan.dcm"])
def test_inspect_bad_input_exits_2_with_one_line(pydicom_file, capsys, name):
    assert main(["inspect", str(pydicom_file(name))]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ") and name in lines[0]


def test_console_script_runs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "ichbundles.cli", "inspect", str(empty)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {empty}: empty folder"


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [(["--scans", "0"], "scans"), (["--size", "8"], "size")],
)
def test_synth_bad_arguments_exit_2(tmp_path, capsys, extra, fragment):
    out = tmp_path / "out"
    assert main(["synth", "--out", str(out), "--quiet", *extra]) == 2
    assert fragment in _one_error_line(capsys)
    assert not out.exists() or not any(out.iterdir())


def test_synth_into_a_file_exits_2(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["synth", "--out", str(target / "sub"), "--scans", "1", "--quiet"]) == 2
    assert "file.txt" in _one_error_line(capsys)


def test_synth_then_inspect_and_index(tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["synth", "--out", str(out), "--scans", "2", "--size", "64", "--quiet"]) == 0
    assert "wrote 2 synthetic scans" in capsys.readouterr().out
    assert main(["inspect", str(out / "dicom" / "scan-0001"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["shape"][1:] == [64, 64]
    assert main(["index", str(out / "dicom"), "--quiet"]) == 0
    assert (out / "dicom" / "ichbundles_index.parquet").is_file()
    assert "indexed" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["missing", "empty", "file"])
def test_index_bad_root_exits_2(tmp_path, capsys, kind):
    root = tmp_path / "root"
    if kind == "empty":
        root.mkdir()
    elif kind == "file":
        root.write_text("x")
    assert main(["index", str(root), "--quiet"]) == 2
    assert str(root) in _one_error_line(capsys)
    assert not (root / "ichbundles_index.parquet").exists()
