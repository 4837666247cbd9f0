"""generate_dataset: files, labels, reads, NIfTI, layouts and determinism."""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from ichbundles.constants import CQ500_READER_COLUMNS, ICH_CLASSES, WINDOW_PRESETS
from ichbundles.data.synthetic import (
    LAYOUTS,
    MIN_SIZE,
    QUIRK_CHOICES,
    QUIRKS,
    generate_dataset,
    make_scan,
)


def test_labels_cover_exactly_the_written_slices(reader, plain_dataset):
    manifest, scans, labels = reader.load(plain_dataset)
    assert len(scans) == 8 and (plain_dataset / "manifest.json").exists()
    total = 0
    for entry, row in zip(manifest["scans"], scans, strict=True):
        images = reader.main_series(plain_dataset / entry["folder"], row["series_instance_uid"])
        assert len(images) == entry["n_slices"]
        total += len(images)
        per_slice = np.array(
            [[labels[f"ID_{ds.SOPInstanceUID}_{c}"] for c in ICH_CLASSES] for ds in images]
        )
        np.testing.assert_array_equal(per_slice[:, 5], per_slice[:, :5].max(axis=1))
        np.testing.assert_array_equal(per_slice.max(axis=0), [int(row[c]) for c in ICH_CLASSES])
        assert all(ds.StudyInstanceUID == row["study_instance_uid"] for ds in images)
    assert len(labels) == 6 * total
    assert 0 < sum(int(r["any"]) for r in scans) < 8


_REQUIRED = (
    "FrameOfReferenceUID", "PixelSpacing", "SliceThickness", "KVP", "SpacingBetweenSlices",
    "WindowCenter", "RescaleType", "PatientID", "ImageOrientationPatient", "StudyDate",
)  # fmt: skip


def test_dicom_modules_and_hu_round_trip(reader, plain_dataset):
    manifest, scans, _ = reader.load(plain_dataset)
    entry, row = manifest["scans"][0], scans[0]
    images = reader.main_series(plain_dataset / entry["folder"], row["series_instance_uid"])
    ds = images[0]
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and ds.Modality == "CT"
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    for keyword in _REQUIRED:
        assert keyword in ds
    assert ds.PatientName.family_name == "SYNTH" and ds.BitsAllocated == 16
    expected = make_scan(entry["seed"], 64).hu
    decoded = np.stack([reader.hu_of(d) for d in images])
    # 1 HU: rounding (HU - intercept) in float32 can flip a .5 tie.
    np.testing.assert_allclose(decoded, np.rint(expected), atol=1.0)


def test_nifti_matches_dicom(reader, plain_dataset):
    manifest, scans, _ = reader.load(plain_dataset)
    entry, row = manifest["scans"][1], scans[1]
    images = reader.main_series(plain_dataset / entry["folder"], row["series_instance_uid"])
    image = nib.load(plain_dataset / entry["nifti"])
    target = nib.orientations.axcodes2ornt(("L", "P", "S"))
    transform = nib.orientations.ornt_transform(nib.io_orientation(image.affine), target)
    lps = nib.orientations.apply_orientation(np.asanyarray(image.dataobj), transform)
    np.testing.assert_array_equal(
        lps.transpose(2, 1, 0), np.stack([reader.hu_of(d) for d in images])
    )
    first = image.affine @ [0, 0, 0, 1]
    np.testing.assert_allclose(first[:3] * [-1, -1, 1], images[0].ImagePositionPatient, atol=1e-3)


def test_reads_majority_matches_truth(reader, tmp_path):
    generate_dataset(tmp_path, 30, size=32, seed=1, progress=False)
    _, scans, _ = reader.load(tmp_path)
    with open(tmp_path / "reads.csv") as f:
        reads = {r["name"]: r for r in csv.DictReader(f)}
    agree = 0
    for row in scans:
        read = reads[row["scan_id"]]
        ok = True
        for cls, column in CQ500_READER_COLUMNS.items():
            votes = sum(int(read[f"R{r}:{column}"]) for r in (1, 2, 3))
            ok &= (votes >= 2) == bool(int(row[cls]))
        agree += ok
    assert agree >= 0.85 * len(scans)
    with open(tmp_path / "reads.csv") as f:
        header = next(csv.reader(f))
    assert header[:3] == ["name", "Category", "R1:ICH"] and header[-1] == "R3:MidlineShift"


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_deterministic_for_any_worker_count(tmp_path):
    kwargs = {"size": 48, "seed": 9, "quirks": ("all",), "progress": False}
    generate_dataset(tmp_path / "a", 4, workers=1, **kwargs)
    generate_dataset(tmp_path / "b", 4, workers=2, **kwargs)
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert len(a) > 4 * 20 and a == b


def test_rsna_layout(reader, tmp_path):
    generate_dataset(tmp_path, 2, size=32, seed=2, layout="rsna", progress=False)
    files = sorted((tmp_path / "stage_2_train").iterdir())
    assert files and all(re.fullmatch(r"ID_[0-9a-f]{9}\.dcm", p.name) for p in files)
    ds = reader.read_images(files[0].parent)[0]
    assert ds.SOPInstanceUID == Path(ds.filename).stem
    assert re.fullmatch(r"ID_[0-9a-f]{10}", ds.StudyInstanceUID)
    assert re.fullmatch(r"ID_[0-9a-f]{10}", ds.SeriesInstanceUID)
    names = {p.stem for p in files}
    with open(tmp_path / "stage_2_train.csv") as f:
        ids = [row["ID"] for row in csv.DictReader(f)]
    assert len(ids) > len(set(ids)) == 6 * len(files)
    assert {i.rsplit("_", 1)[0] for i in ids} == names


def test_cq500_layout(tmp_path):
    generate_dataset(tmp_path, 2, size=32, seed=2, layout="cq500", thin=True, progress=False)
    for i in range(2):
        folder = tmp_path / f"CQ500CT{i} CQ500CT{i}" / "Unknown Study" / "CT PLAIN THIN"
        names = [p.name for p in folder.iterdir()]
        assert names and all(re.fullmatch(r"CT\d{6}\.dcm", n) for n in names)
    with open(tmp_path / "reads.csv") as f:
        assert [r["name"] for r in csv.DictReader(f)] == ["CQ500-CT-0", "CQ500-CT-1"]


def test_window_tags_come_from_the_presets(reader, plain_dataset):
    brain, bone = WINDOW_PRESETS["adjacent"][0], WINDOW_PRESETS["adjacent"][2]
    seen = set()
    for folder in sorted((plain_dataset / "dicom").iterdir()):
        for ds in reader.read_images(folder):
            centre, width = ds.WindowCenter, ds.WindowWidth
            if isinstance(centre, pydicom.multival.MultiValue):
                assert [float(c) for c in centre] == [brain[0], bone[0]]
                assert [float(w) for w in width] == [brain[1], bone[1]]
                seen.add("multi")
            else:
                assert (float(centre), float(width)) == brain
                seen.add("single")
    assert seen == {"multi", "single"}


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layout": "nested"}, r"^unknown layout 'nested'; choose from folders, rsna, cq500$"),
        ({"quirks": ("bogus", "gap")}, r"^unknown quirk\(s\) 'bogus'; choose from .*, junk, all$"),
        ({"quirks": "bogus"}, r"^unknown quirk\(s\) 'bogus'; choose from "),
        ({"n_scans": 0}, r"^n_scans must be at least 1, got 0$"),
        ({"n_scans": -3}, r"^n_scans must be at least 1, got -3$"),
        ({"size": MIN_SIZE - 1}, rf"^size must be at least {MIN_SIZE} pixels, got {MIN_SIZE - 1}$"),
    ],
)
def test_bad_arguments_raise_before_writing(tmp_path, kwargs, message):
    out = tmp_path / "out"
    arguments = {"n_scans": 1, "size": MIN_SIZE, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=message) as error:
        generate_dataset(out, preview=tmp_path / "p.png", **arguments)
    assert "\n" not in str(error.value)
    assert _tree(tmp_path) == []


def test_out_is_a_file(tmp_path):
    out = tmp_path / "data"
    out.write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="exists and is not a folder") as error:
        generate_dataset(out, 1, size=MIN_SIZE, progress=False)
    assert str(out) in str(error.value) and "\n" not in str(error.value)
    assert _tree(tmp_path) == ["data"] and out.read_text() == "not a folder"


def test_out_below_a_file(tmp_path):
    (tmp_path / "data").write_text("")
    out = tmp_path / "data" / "synthetic"
    with pytest.raises(NotADirectoryError, match="is a file") as error:
        generate_dataset(out, 1, size=MIN_SIZE, progress=False)
    assert str(tmp_path / "data") in str(error.value) and "\n" not in str(error.value)
    assert _tree(tmp_path) == ["data"]


def test_preview_is_a_folder(tmp_path):
    (tmp_path / "p.png").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder") as error:
        generate_dataset(tmp_path / "out", 1, size=MIN_SIZE, preview=tmp_path / "p.png")
    assert str(tmp_path / "p.png") in str(error.value)
    assert _tree(tmp_path) == ["p.png"]


def test_smallest_size_and_single_quirk_string(tmp_path):
    manifest = generate_dataset(tmp_path, 1, size=MIN_SIZE, quirks="gap", progress=False)
    assert manifest.is_file()
    assert "gap" in manifest.read_text()


def test_quirk_choices_work_as_argparse_choices():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quirks", nargs="*", choices=QUIRK_CHOICES, default=[])
    parser.add_argument("--layout", choices=LAYOUTS)
    assert parser.parse_args(["--quirks", "all", "gap"]).quirks == ["all", "gap"]
    assert set(QUIRK_CHOICES) == {*QUIRKS, "all"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--quirks", "bogus"])


def test_preview_png(tmp_path):
    from PIL import Image

    preview = tmp_path / "previews" / "p.png"  # its folder is created
    generate_dataset(tmp_path / "set", 3, size=32, seed=0, preview=preview, progress=False)
    assert Image.open(preview).size[0] >= 256
