"""VGPMILInferer: Att-CNN features through one VGPMIL per class, as logits and attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ichbundles.constants import ICH_CLASSES
from ichbundles.mil import MILFeatures, VGPMILInferer, fit_vgpmil_from_features, load_vgpmil
from ichbundles.networks import AttentionMIL

FAST = {"num_inducing": 10, "max_iter": 20, "seed": 0}
FEATURES = 4


def _features(n_bags: int = 12, seed: int = 0) -> MILFeatures:
    """Random slice features; every class has positive and negative bags."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 7, size=n_bags)
    n = int(sizes.sum())
    bag_labels = np.stack([(np.arange(n_bags) + k) % 3 == 0 for k in range(6)], axis=1)
    scan_labels = np.repeat(bag_labels.astype(np.float32), sizes, axis=0)
    return MILFeatures(
        bag_ids=np.repeat([f"s{b:02d}" for b in range(n_bags)], sizes),
        slice_index=np.concatenate([np.arange(k) for k in sizes]),
        sop_instance_uids=None,
        features=rng.normal(size=(n, FEATURES)).astype(np.float32),
        weights=rng.random(n).astype(np.float32),
        scan_probability=np.full((n, 6), 0.5, dtype=np.float32),
        scan_labels=scan_labels,
        slice_labels=scan_labels,
    )


@pytest.fixture(scope="module")
def network() -> AttentionMIL:
    torch.manual_seed(0)
    return AttentionMIL(image_size=64, num_outputs=6, features=FEATURES).eval()


@pytest.mark.parametrize("variant", ["raw", "weighted"])
def test_logits_are_vgpmil_latents_of_the_network_features(network, variant, tmp_path):
    fit_vgpmil_from_features(_features(), tmp_path, ICH_CLASSES, variant=variant, params=FAST)
    inferer = VGPMILInferer(tmp_path)
    x = torch.rand(2, 5, 3, 64, 64)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    with torch.inference_mode():
        out = inferer(x, network, mask=mask)
        extracted = network.extract(x, mask)
    assert set(out) == {"pred", "attention"}
    assert out["pred"].shape == (2, 5, 6) and out["pred"].dtype == torch.float32
    torch.testing.assert_close(out["attention"], extracted["weights"])
    rows = extracted["features"]
    if variant == "weighted":
        rows = rows * extracted["weights"][..., None]
    rows = rows.reshape(-1, FEATURES).numpy()
    models, _ = load_vgpmil(tmp_path)
    for k, name in enumerate(ICH_CLASSES):
        expected = models[name].decision_function(rows).reshape(2, 5)
        np.testing.assert_allclose(out["pred"][..., k].numpy(), expected, rtol=1e-5, atol=1e-6)
        # sigmoid, then the maximum over the real slices: VGPMIL's bag probability
        bag_ids = np.repeat(["a", "b"], 5)[mask.flatten().numpy()]
        _, bag_p = models[name].predict_proba(rows[mask.flatten().numpy()], bag_ids)
        scan = torch.sigmoid(out["pred"][..., k]).masked_fill(~mask, 0).amax(dim=1)
        np.testing.assert_allclose(scan.numpy(), bag_p, rtol=1e-5)


def test_missing_classes_are_one_clear_error(tmp_path):
    fit_vgpmil_from_features(_features(), tmp_path, ("any",), params=FAST)
    with pytest.raises(ValueError, match=r"no VGPMIL for epidural.*scan_outputs=6"):
        VGPMILInferer(tmp_path)
    assert len(VGPMILInferer(tmp_path, classes=("any",)).models) == 1
