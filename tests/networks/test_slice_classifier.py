"""SliceClassifier: one network for single slices and for padded scans."""

from __future__ import annotations

import pytest
import torch

from ichbundles.networks import SliceClassifier


@pytest.fixture
def net() -> SliceClassifier:
    torch.manual_seed(0)
    return SliceClassifier("resnet10_tiny").eval()


def test_slices_give_one_row_each(net):
    assert net(torch.rand(5, 3, 32, 32)).shape == (5, 6)


def test_scans_equal_their_slices_alone_and_ignore_padding(net):
    scans = torch.rand(2, 4, 3, 32, 32)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    with torch.inference_mode():
        out = net(scans, mask)
        alone = net(scans[1, :2])
        scans[1, 2:] = 100.0  # garbage in the padding changes nothing
        again = net(scans, mask)
    assert out.shape == (2, 4, 6)
    torch.testing.assert_close(out[1, :2], alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again[mask], out[mask])


@pytest.mark.parametrize(
    ("shape", "mask", "match"),
    [
        ((3, 32, 32), None, "expected"),
        ((4, 3, 32, 32), torch.ones(1, 4, dtype=torch.bool), "mask goes with"),
    ],
)
def test_wrong_inputs_raise(net, shape, mask, match):
    with pytest.raises(ValueError, match=match):
        net(torch.rand(*shape), mask)
