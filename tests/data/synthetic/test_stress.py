"""Stress factors: each takes its value outside the normal range and changes nothing else."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from ichbundles.cli import main
from ichbundles.data.synthetic import (
    FACTORS,
    Stress,
    Tissue,
    generate_dataset,
    make_scan,
    parse_stress,
)
from ichbundles.data.synthetic.lesions import resize_lesion, sample_lesions, with_density
from ichbundles.data.synthetic.scan import HU_RANGE

SEED, SIZE = 0, 48  # a thick-slice scan with three bleeds (two parenchymal, one subarachnoid)
SCAN_LEVEL = [name for name in FACTORS if not name.startswith("lesion_")]
STRESSED = [(f.name, v) for f in FACTORS.values() for v in f.stressed]

# What a stress of each factor may change besides its own value: acquisition fields, other
# realised factors, lesion-record keys; and whether tissue and labels stay the same.
_ACQUISITION = {
    "noise": {"noise_scale"},
    "hu_offset": {"hu_offset"},
    "sharpening": {"sharpening", "kernel"},
    "spacing": {"spacing", "slab_offsets"},
}
_OTHER_FACTORS = {"scale": {"fov"}}  # the field of view grows to fit a large head
_LESION_KEYS = {
    "spacing": {"slices"},
    "scale": {"centre", "size_mm", "slices"},
    "rotation": {"centre", "slices"},
    "tilt": {"slices"},
    "fov": {"centre", "slices"},
    "lesion_hu": {"hu"},
    "lesion_size": {"size_mm", "slices"},
}
_SAME_TISSUE = {"noise", "hu_offset", "sharpening", "pv_blur", "lesion_hu"}
_SAME_POSITIONS = _SAME_TISSUE | {"rotation", "lesion_size"}


@pytest.fixture(scope="module")
def base():
    return make_scan(SEED, SIZE)


def _expected(name: str, value: float, base) -> float:
    if name == "noise":
        return base.factors["noise"] * value
    if name == "rotation":
        return math.copysign(value, base.factors["rotation"])
    return value


def _near_lesions(*scans) -> np.ndarray:
    """Pixels a bleed can reach: blood or oedema of either scan, widened by the filters' reach."""
    region = np.zeros(scans[0].hu.shape, dtype=bool)
    for scan in scans:
        region |= np.isin(scan.tissue, [Tissue.BLOOD, Tissue.OEDEMA])
    # partial-volume blur and sharpening reach up to ~9 mm in-plane; the slab, the next slices
    pixels = math.ceil(10.0 / scans[0].spacing[1]) + 1
    return binary_dilation(region, np.ones((3, 2 * pixels + 1, 2 * pixels + 1), dtype=bool))


@pytest.mark.parametrize(("thin", "seeds"), [(False, range(8)), (True, range(3))])
def test_unstressed_scans_lie_in_the_normal_ranges(thin, seeds):
    for seed in seeds:
        scan = make_scan(seed, 32, thin)
        assert set(scan.factors) == set(SCAN_LEVEL)
        for name, value in scan.factors.items():
            low, high = FACTORS[name].normal_range(thin)
            assert low - 1e-9 <= value <= high + 1e-9, (seed, name, value)
        for lesion in scan.lesions:
            assert FACTORS["lesion_hu"].normal[0] <= lesion["hu"] <= FACTORS["lesion_hu"].normal[1]


def test_an_empty_stress_is_the_normal_scan(base):
    scan = make_scan(SEED, SIZE, stress=Stress())
    np.testing.assert_array_equal(scan.hu, base.hu)
    assert scan.lesions == base.lesions and scan.factors == base.factors
    assert not Stress() and Stress().tag() == "" and scan.stress == Stress()


@pytest.mark.parametrize(("name", "value"), STRESSED, ids=[f"{n}={v:g}" for n, v in STRESSED])
def test_a_stress_sets_its_factor_and_nothing_else(base, name, value):
    assert base.lesions, "the comparison needs a scan with bleeds"
    scan = make_scan(SEED, SIZE, stress=Stress(**{name: value}))
    low, high = FACTORS[name].normal_range()
    assert not low <= value <= high

    if name in SCAN_LEVEL:
        assert scan.factors[name] == pytest.approx(_expected(name, value, base))
        assert not low <= scan.factors[name] <= high
    changed = {k for k in base.factors if scan.factors[k] != pytest.approx(base.factors[k])}
    assert changed <= {name} | _OTHER_FACTORS.get(name, set())

    drawn, stressed = dataclasses.asdict(base.acquisition), dataclasses.asdict(scan.acquisition)
    assert {k for k in drawn if drawn[k] != stressed[k]} <= _ACQUISITION.get(name, set())

    assert len(scan.lesions) == len(base.lesions)
    allowed = _LESION_KEYS.get(name, set())
    for ours, theirs in zip(scan.lesions, base.lesions, strict=True):
        assert {k for k in ours if ours[k] != theirs[k]} <= allowed
    if name == "lesion_hu":
        assert all(lesion["hu"] == value for lesion in scan.lesions)
    if name == "lesion_size":
        ratios = [
            ours["size_mm"][0] / theirs["size_mm"][0]
            for ours, theirs in zip(scan.lesions, base.lesions, strict=True)
            if ours["type"] != "intraventricular"
        ]
        assert ratios and np.allclose(ratios, value, rtol=0.02)

    if name == "spacing":
        assert len(scan.hu) != len(base.hu)
        np.testing.assert_allclose(np.diff(scan.positions[:, 2]), value)
        return
    assert scan.hu.shape == base.hu.shape
    if name in _SAME_POSITIONS:
        np.testing.assert_array_equal(scan.positions, base.positions)
    if name in _SAME_TISSUE:
        np.testing.assert_array_equal(scan.tissue, base.tissue)
        np.testing.assert_array_equal(scan.slice_labels, base.slice_labels)
    differs = scan.hu != base.hu
    assert differs.any()
    if name == "hu_offset":
        inside = [(h > HU_RANGE[0]) & (h < HU_RANGE[1]) for h in (scan.hu, base.hu)]
        shift = scan.hu - base.hu
        np.testing.assert_allclose(
            shift[inside[0] & inside[1]], value - base.acquisition.hu_offset, atol=2e-3
        )
    if name.startswith("lesion_"):
        assert not (differs & ~_near_lesions(scan, base)).any()


def test_tilt_keeps_the_quirks_direction():
    assert Stress(tilt=30.0).tilted(-12.0) == -30.0
    assert Stress(tilt=30.0).tilted(0.0) == 30.0
    assert Stress().tilted(-12.0) == -12.0
    scan = make_scan(SEED, SIZE, tilt=-12.0, stress=Stress(tilt=30.0))
    steps = np.diff(scan.positions, axis=0)
    np.testing.assert_allclose(steps[:, 1] / steps[:, 2], math.tan(math.radians(30.0)))


@pytest.mark.parametrize("subtype", ["epidural", "subdural", "intraparenchymal", "subarachnoid"])
def test_resize_scales_extent_and_thickness_in_place(subtype):
    lesion = _one_lesion(subtype)
    small = resize_lesion(lesion, 0.5)
    assert small.centre == lesion.centre and small.hu == lesion.hu
    if subtype == "intraparenchymal":
        np.testing.assert_allclose(small.size[:3], np.asarray(lesion.size[:3]) * 0.5)
        assert small.size[3] == pytest.approx(1.0 + 0.25 * small.size[0])
    else:
        np.testing.assert_allclose(small.size, np.asarray(lesion.size) * 0.5)
    assert lesion.z_range[0] < small.z_range[0] < small.z_range[1] < lesion.z_range[1]


def test_resize_thins_the_ventricular_layer_and_density_moves_the_bleed():
    lesion = _one_lesion("intraventricular")
    level = resize_lesion(lesion, 0.5).size[0]
    assert lesion.size[0] < level < 53.0  # the fluid level moves back: a shallower layer
    assert 53.0 - level == pytest.approx(0.5 * (53.0 - lesion.size[0]))
    dense = with_density(lesion, 44.0)
    assert dense.hu + dense.hu_shift == pytest.approx(44.0) and dense.size == lesion.size


def _one_lesion(subtype: str):
    for seed in range(500):
        for lesion in sample_lesions(np.random.default_rng(seed), 0.0, 100.0):
            if lesion.subtype == subtype:
                return lesion
    raise AssertionError(f"no {subtype} drawn")


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["bogus=1"], "unknown stress factor 'bogus'; names: noise, hu_offset"),
        (["noise"], "not NAME=VALUE; names: noise"),
        (["noise=abc"], "'abc' is not a number"),
        (["noise=nan"], "outside"),
        (["tilt=60"], "stress tilt=60.0 is outside 0 to 40"),
        (["fov=340", "fov=330"], "'fov' given twice"),
        ({"scale": "big"}, "is not a number"),
    ],
)
def test_bad_stress_is_refused_in_one_line(items, message):
    with pytest.raises(ValueError, match=message) as error:
        parse_stress(items)
    assert "\n" not in str(error.value)


def test_parse_stress_forms_agree():
    stress = Stress(hu_offset=-15.0, spacing=7.0)
    assert parse_stress(["spacing=7", "hu_offset=-15"]) == stress
    assert parse_stress({"hu_offset": -15, "spacing": 7}) == stress
    assert parse_stress(stress) is stress and parse_stress(None) == Stress()
    assert parse_stress("fov=340") == Stress(fov=340.0)
    assert stress.tag() == "hu_offset=-15,spacing=7"


def test_stressed_dataset_records_the_stress_and_has_its_own_uids(tmp_path):
    plain = json.loads(generate_dataset(tmp_path / "p", 2, size=32, progress=False).read_text())
    path = generate_dataset(tmp_path / "s", 2, size=32, stress=["hu_offset=15"], progress=False)
    stressed = json.loads(path.read_text())
    assert "stress" not in plain["arguments"] and "factors" not in plain["scans"][0]
    assert stressed["arguments"]["stress"] == {"hu_offset": 15.0}
    for ours, theirs in zip(stressed["scans"], plain["scans"], strict=True):
        assert ours["factors"]["hu_offset"] == 15.0 == ours["acquisition"]["hu_offset"]
        assert ours["series_instance_uid"] != theirs["series_instance_uid"]
        assert ours["lesions"] == theirs["lesions"]
        assert ours["scan_labels"] == theirs["scan_labels"]


def test_cli_writes_a_stressed_set(tmp_path, capsys):
    out = tmp_path / "set"
    argv = ["synth", "--out", str(out), "--scans", "1", "--size", "32", "--quiet"]
    assert main([*argv, "--stress", "spacing=7", "lesion_hu=44"]) == 0
    assert "wrote 1 synthetic scans" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["arguments"]["stress"] == {"spacing": 7.0, "lesion_hu": 44.0}
    assert manifest["scans"][0]["spacing"][0] == 7.0


@pytest.mark.parametrize(
    ("item", "fragment"),
    [("bogus=1", "names: noise, hu_offset, sharpening"), ("scale=huge", "not a number")],
)
def test_cli_refuses_a_bad_stress(tmp_path, capsys, item, fragment):
    out = tmp_path / "set"
    assert main(["synth", "--out", str(out), "--quiet", "--stress", item]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0]
    assert not out.exists()
