"""``ichbundles bundles``: every bundle with its version, paper and shipped model."""

from __future__ import annotations

import json

import pytest

from ichbundles.bundle import paths
from ichbundles.bundle.catalog import short_reference
from ichbundles.cli import main

SHIPPED = {
    "file": "models/model.pt",
    "sha256": "0" * 64,
    "size_bytes": 1_234_567,
    "results": {
        "scan_any_auc": 0.95,
        "scan_any_auc_ci": [0.93, 0.97],
        "slice_any_auc": 0.9,
        "slice_wll": 0.12,
        "test_set": "120 scans, ichbundles synth --seed 1",
    },
}


def _metadata(bundle: str) -> dict:
    return json.loads((paths.bundle_path(bundle) / "configs" / "metadata.json").read_text())


def _fake_bundle(root, name, shipped_model=None, model_bytes=None):
    configs = root / name / "configs"
    configs.mkdir(parents=True)
    metadata = {
        "version": "9.8.7",
        "name": f"Fake {name}",
        "references": [
            "Doe, J., Roe, R. A Fake Paper. Venue 2019. https://arxiv.org/abs/2005.10992"
        ],
    }
    if shipped_model is not None:
        metadata["shipped_model"] = shipped_model
    (configs / "metadata.json").write_text(json.dumps(metadata))
    if model_bytes is not None:
        (root / name / "models").mkdir()
        (root / name / "models" / "model.pt").write_bytes(b"\0" * model_bytes)


def test_lists_the_repository_bundles(capsys):
    assert main(["bundles"]) == 0
    out = capsys.readouterr().out
    for bundle in ("ich_cnn_lstm", "ich_attention_mil", "ich_adjacent_slices"):
        row = next(line for line in out.splitlines() if line.startswith(bundle + " "))
        assert _metadata(bundle)["version"] in row
    assert "Nguyen et al. 2020" in out  # ich_cnn_lstm's paper (002)
    assert str(paths.BUNDLES_DIR) in out


def test_json_lists_the_same(capsys):
    assert main(["bundles", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [entry["name"] for entry in listed] == paths.available_bundles()
    for entry in listed:
        assert entry["version"] == _metadata(entry["name"])["version"]
        assert entry["path"] == str(paths.bundle_path(entry["name"]))
        assert set(entry) >= {"paper", "reference", "shipped_model", "shipped_model_missing"}


def test_shipped_model_figures(tmp_path, monkeypatch, capsys):
    _fake_bundle(tmp_path, "with_model", SHIPPED, model_bytes=1_234_567)
    _fake_bundle(tmp_path, "model_not_installed", SHIPPED)
    _fake_bundle(tmp_path, "no_model")
    monkeypatch.setattr(paths, "BUNDLES_DIR", tmp_path)

    assert main(["bundles"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    assert "9.8.7" in rows["with_model"]
    assert "Doe et al. 2019" in rows["with_model"]
    assert "models/model.pt, 1.2 MB" in rows["with_model"]
    assert "scan any AUC 0.950 (95% CI 0.930-0.970)" in rows["with_model"]
    assert "120 scans, ichbundles synth --seed 1" in rows["with_model"]
    assert rows["model_not_installed"].endswith("no shipped model (models/model.pt is missing)")
    assert rows["no_model"].endswith("no shipped model")

    assert main(["bundles", "--json"]) == 0
    listed = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    model = listed["with_model"]["shipped_model"]
    assert model["size_bytes"] == 1_234_567
    assert model["size_mb"] == pytest.approx(1.2)
    assert model["scan_any_auc"] == 0.95
    assert model["scan_any_auc_ci"] == [0.93, 0.97]
    assert model["sha256"] == SHIPPED["sha256"]
    assert model["results"] == SHIPPED["results"]
    assert listed["model_not_installed"]["shipped_model"] is None
    assert listed["model_not_installed"]["shipped_model_missing"] == "models/model.pt"
    assert listed["no_model"]["shipped_model"] is None
    assert listed["no_model"]["shipped_model_missing"] is None


def test_broken_metadata_exits_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken" / "configs").mkdir(parents=True)
    (tmp_path / "broken" / "configs" / "metadata.json").write_text("{not json")
    monkeypatch.setattr(paths, "BUNDLES_DIR", tmp_path)
    assert main(["bundles"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "metadata.json: not valid JSON" in err


def test_short_reference():
    assert short_reference("Wu, Y., Schmidt, A. Title. MICCAI 2021 (paper 000)") == "Wu et al. 2021"
    # an arXiv number is not a year
    assert short_reference("Ngo, D.T. Title. https://arxiv.org/abs/2208.03403") == "Ngo et al."
    assert short_reference("") == ""
