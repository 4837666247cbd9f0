"""Resolving bundles by name or path (source checkout and installed wheel), and overrides."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest

from ichbundles.bundle import (
    BundleNotFoundError,
    available_bundles,
    bundle_path,
    parse_overrides,
    paths,
)
from ichbundles.bundle.paths import BUNDLES_DIR


def test_bundle_by_name_and_by_path():
    assert "ich_cnn_lstm" in available_bundles()
    by_name = bundle_path("ich_cnn_lstm")
    assert by_name == (BUNDLES_DIR / "ich_cnn_lstm").resolve()
    assert bundle_path(str(by_name)) == by_name


def test_unknown_bundle_names_the_choices(tmp_path):
    with pytest.raises(BundleNotFoundError, match="ich_cnn_lstm"):
        bundle_path("no_such_bundle")
    with pytest.raises(BundleNotFoundError):
        bundle_path(tmp_path)


def test_parse_overrides():
    parsed = parse_overrides(["train#dataloader#batch_size=4", "resume=true", "x=$@epochs * 2"])
    assert parsed == {"train#dataloader#batch_size": 4, "resume": True, "x": "$@epochs * 2"}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["batch_size"])


# Package data: where the bundles are found, and what a wheel carries.

REPO = Path(__file__).resolve().parents[2]
THREE_BUNDLES = ("ich_adjacent_slices", "ich_attention_mil", "ich_cnn_lstm")


def test_source_checkout_uses_the_repository_bundles():
    package = Path(str(resources.files("ichbundles")))
    assert BUNDLES_DIR == package.resolve().parent / "bundles" == REPO / "bundles"
    for name in THREE_BUNDLES:
        assert (BUNDLES_DIR / name / "configs" / "metadata.json").is_file()
    assert set(THREE_BUNDLES) <= set(available_bundles())


def test_installed_package_uses_its_package_data(tmp_path, monkeypatch):
    """A wheel's layout: ichbundles/_share/bundles beside the modules, found by importlib."""
    package = tmp_path / "site-packages" / "ichbundles"
    (package / "_share" / "bundles" / "fake" / "configs").mkdir(parents=True)
    (package / "_share" / "bundles" / "fake" / "configs" / "metadata.json").write_text("{}")
    monkeypatch.setattr(paths.resources, "files", lambda name: package)
    bundles = paths._shared_dir("bundles")
    assert bundles == (package / "_share" / "bundles").resolve()
    assert available_bundles(bundles) == ["fake"]
    assert bundle_path("fake", bundles) == bundles / "fake"


def test_zipped_package_fails_clearly(tmp_path, monkeypatch):
    archive = tmp_path / "ichbundles.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("ichbundles/_share/bundles/fake/configs/metadata.json", "{}")
    monkeypatch.setattr(paths.resources, "files", lambda name: zipfile.Path(archive, "ichbundles/"))
    with pytest.raises(RuntimeError, match="not a folder on disk"):
        paths._shared_dir("bundles")


def _shipped_source_files(folder: Path) -> set[str]:
    """Files a wheel must carry from ``folder``: all but caches and hidden files."""
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    }


def test_wheel_carries_the_bundles(tmp_path):
    """Build a wheel from a copy of the sources; it holds every bundle file, models included."""
    source = tmp_path / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("ichbundles", "bundles", "configs"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=ignore)
    # a binary model and its sidecar, whether or not the checkout ships one yet
    models = source / "bundles" / "ich_cnn_lstm" / "models"
    models.mkdir(exist_ok=True)
    (models / "test_model.pt").write_bytes(bytes(range(256)) * 8)
    (models / "test_model.json").write_text("{}")

    dist = tmp_path / "dist"
    build = "import sys, setuptools.build_meta as backend; backend.build_wheel(sys.argv[1])"
    built = subprocess.run(
        [sys.executable, "-c", build, str(dist)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as zipped:
        names = set(zipped.namelist())
        assert zipped.read("ichbundles/_share/bundles/ich_cnn_lstm/models/test_model.pt") == (
            bytes(range(256)) * 8
        )

    modules = {p.relative_to(source).as_posix() for p in (source / "ichbundles").rglob("*.py")}
    assert modules <= names, f"modules not in the wheel: {sorted(modules - names)}"
    for folder in ("bundles", "configs"):
        if (source / folder).is_dir():
            wanted = {
                f"ichbundles/_share/{folder}/{name}"
                for name in _shipped_source_files(source / folder)
            }
            assert wanted <= names, f"not in the wheel (see setup.py): {sorted(wanted - names)}"
    for bundle in THREE_BUNDLES:
        for name in ("configs/metadata.json", "configs/inference.yaml", "docs/README.md"):
            assert f"ichbundles/_share/bundles/{bundle}/{name}" in names
    assert "ichbundles/_share/bundles/schema/meta_schema_20240725.json" in names
