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
