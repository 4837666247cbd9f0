"""Phase 2 fit: VGPMIL per scan output on raw or attention-weighted slice features, saved as
npz models and a JSON of settings that load back and predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ichbundles.constants import ICH_CLASSES
from ichbundles.mil import (
    VGPMIL,
    MILFeatures,
    fit_vgpmil_from_features,
    load_vgpmil,
    paper_experiment,
    vgpmil_inputs,
)

FAST = {"num_inducing": 20, "max_iter": 30, "seed": 0}


def _features(n_bags: int = 24, seed: int = 0) -> MILFeatures:
    """Bags of 6-10 slices with 4 features; in positive bags ("any") 1-3 slices are shifted by
    4 along the first feature. Subtype columns copy "any" for bags of even index."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {k: [] for k in ("bag", "x", "w", "scan", "slice")}
    for b in range(n_bags):
        n, positive = int(rng.integers(6, 11)), b % 2 == 1
        x = rng.normal(size=(n, 4))
        hits = rng.choice(n, size=int(rng.integers(1, 4)), replace=False) if positive else []
        x[hits, 0] += 4.0
        labels = np.zeros((n, 6))
        labels[hits, 5] = 1.0
        labels[hits, 0] = float(b % 4 == 1)
        rows["bag"] += [f"scan-{b:02d}"] * n
        rows["x"].append(x)
        rows["w"].append(rng.dirichlet(np.ones(n)))
        rows["slice"].append(labels)
        rows["scan"].append(np.tile(labels.max(axis=0), (n, 1)))
    n_rows = len(rows["bag"])
    return MILFeatures(
        bag_ids=np.array(rows["bag"]),
        slice_index=np.concatenate([np.arange(len(w)) for w in rows["w"]]),
        sop_instance_uids=np.array([f"uid{i}" for i in range(n_rows)]),
        features=np.concatenate(rows["x"]).astype(np.float32),
        weights=np.concatenate(rows["w"]).astype(np.float32),
        scan_probability=np.full((n_rows, 1), 0.5, dtype=np.float32),
        scan_labels=np.concatenate(rows["scan"]).astype(np.float32),
        slice_labels=np.concatenate(rows["slice"]).astype(np.float32),
    )


@pytest.fixture(scope="module")
def features() -> MILFeatures:
    return _features()


def test_weighted_input_is_features_times_attention(features):
    raw, weighted = vgpmil_inputs(features, "raw"), vgpmil_inputs(features, "weighted")
    np.testing.assert_array_equal(raw, features.features)
    np.testing.assert_allclose(weighted, features.features * features.weights[:, None])
    with pytest.raises(ValueError, match="raw"):
        vgpmil_inputs(features, "pooled")


@pytest.mark.parametrize("variant", ["raw", "weighted"])
def test_fit_uses_the_chosen_input_and_saves_models_that_predict_alike(features, variant, tmp_path):
    fit = fit_vgpmil_from_features(features, tmp_path, variant=variant, params=FAST)
    x = vgpmil_inputs(features, variant)
    model = fit.models["any"]
    # VGPMIL z-scores its input: the learned mean is that of the chosen variant's features
    np.testing.assert_allclose(model.mean_, x.mean(axis=0), rtol=1e-5, atol=1e-7)
    assert [p.name for p in fit.paths] == ["vgpmil.npz", "vgpmil.json"]

    loaded, settings = load_vgpmil(tmp_path)
    instance_p, bag_p = loaded["any"].predict_proba(x, features.bag_ids)
    expected = model.predict_proba(x, features.bag_ids)
    np.testing.assert_allclose(instance_p, expected[0])
    np.testing.assert_allclose(bag_p, expected[1])
    assert instance_p.shape == (len(features),) and bag_p.shape == (features.n_bags,)
    assert settings["input"] == variant and settings["n_instances"] == len(features)
    assert settings["n_bags"] == 24 and settings["positive_bags"] == {"any": 12}
    assert settings["vgpmil"]["num_inducing"] == 20 and settings["fit_seconds"]["any"] >= 0


def test_raw_input_separates_positive_from_negative_scans(features, tmp_path):
    fit = fit_vgpmil_from_features(features, tmp_path, params=FAST)
    instance_p, bag_p = fit.models["any"].predict_proba(features.features, features.bag_ids)
    first = np.unique(features.bag_ids, return_index=True)[1]  # bag_p is in np.unique order
    assert roc_auc_score(features.scan_labels[first, 5], bag_p) > 0.9
    assert roc_auc_score(features.slice_labels[:, 5], instance_p) > 0.9


def test_several_outputs_give_one_file_per_class(features, tmp_path):
    classes = ICH_CLASSES[-6:]
    fit = fit_vgpmil_from_features(features, tmp_path, classes=classes, params=FAST)
    names = sorted(p.name for p in tmp_path.glob("*.npz"))
    assert names == sorted(f"vgpmil_{c}.npz" for c in classes)
    settings = json.loads((tmp_path / "vgpmil.json").read_text())
    assert settings["models"] == {c: f"vgpmil_{c}.npz" for c in classes}
    assert settings["positive_bags"]["epidural"] == 6 and settings["positive_bags"]["subdural"] == 0
    models, _ = load_vgpmil(tmp_path)
    assert set(models) == set(classes) and all(isinstance(m, VGPMIL) for m in models.values())
    assert set(fit.metrics()) == {f"{k}_{c}" for k in ("fit_seconds", "elbo") for c in classes}


@pytest.mark.parametrize(
    ("pooling", "variant", "name"),
    [
        ("attention", "raw", "AL-nAw"),
        ("attention", "weighted", "AL-Aw"),
        ("mean", "raw", "nAL"),
        ("gated", "raw", None),
        (None, "raw", None),
    ],
)
def test_paper_experiment_names(pooling, variant, name):
    assert paper_experiment(pooling, variant) == name


def test_settings_record_pooling_and_metadata(features, tmp_path):
    fit = fit_vgpmil_from_features(
        features, tmp_path, params=FAST, pooling="mean", metadata={"checkpoint": "m.pt"}
    )
    assert fit.settings["experiment"] == "nAL" and fit.settings["metadata"]["checkpoint"] == "m.pt"
    params = fit.params()
    assert params["pooling"] == "mean" and params["vgpmil_max_iter"] == "30"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scan_labels": None}, "needs scan labels"),
        ({"classes": ("nothing",)}, "subset"),
        ({"label_names": ("a", "b")}, "names"),
    ],
)
def test_invalid_requests_raise(features, tmp_path, change, message):
    kwargs = {"classes": ("any",), "label_names": ICH_CLASSES}
    kwargs.update({k: v for k, v in change.items() if k != "scan_labels"})
    if "scan_labels" in change:
        features = MILFeatures(**{**features.__dict__, "scan_labels": None})
    with pytest.raises(ValueError, match=message):
        fit_vgpmil_from_features(features, tmp_path, params=FAST, **kwargs)
