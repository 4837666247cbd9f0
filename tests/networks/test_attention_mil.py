"""Tests for the Att-CNN of paper 000."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ichbundles.networks import AttentionMIL

LENGTHS = (5, 2, 4)
S = 5


def _mask(lengths=LENGTHS, s=S):
    return torch.arange(s)[None] < torch.tensor(lengths)[:, None]


@pytest.mark.parametrize(
    ("image_size", "num_outputs", "pooling"),
    [(64, 1, "attention"), (96, 6, "gated"), (128, 1, "mean")],
)
def test_shapes(image_size, num_outputs, pooling):
    net = AttentionMIL(image_size=image_size, num_outputs=num_outputs, pooling=pooling).eval()
    x = torch.randn(3, S, 3, image_size, image_size)
    with torch.no_grad():
        out = net.extract(x, _mask())
        assert net(x, _mask()).shape == (3, num_outputs)
    assert out["logits"].shape == (3, num_outputs)
    assert out["features"].shape == (3, S, 8)
    assert out["weights"].shape == (3, S)
    assert out["pooled"].shape == (3, 8)
    torch.testing.assert_close(out["weights"].sum(1), torch.ones(3))


def test_architecture_follows_the_paper():
    net = AttentionMIL(image_size=512)
    convs = [m for m in net.encoder.modules() if isinstance(m, nn.Conv2d)]
    pools = [m for m in net.encoder.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(convs) == 6 and len(pools) == 6
    linear = net.encoder[-1]
    assert linear.out_features == 8 and linear.in_features == 128 * 8 * 8
    assert net.pooling.tanh_branch[0].out_features == 50
    assert net.classifier.in_features == 8


def test_padded_slices_do_not_change_outputs():
    torch.manual_seed(0)
    net = AttentionMIL(image_size=64).eval()
    scans = [torch.rand(n, 3, 64, 64) for n in LENGTHS]
    x = torch.stack([torch.cat([s, torch.randn(S - len(s), 3, 64, 64)]) for s in scans])
    with torch.no_grad():
        batched = net.extract(x, _mask())
        for i, scan in enumerate(scans):
            alone = net.extract(scan[None])
            torch.testing.assert_close(batched["logits"][i], alone["logits"][0])
            n = LENGTHS[i]
            torch.testing.assert_close(batched["weights"][i, :n], alone["weights"][0])
            torch.testing.assert_close(batched["features"][i, :n], alone["features"][0])


def test_trains_on_scan_labels():
    """A bright square in one slice makes a scan positive; a few steps must fit 8 scans."""
    torch.manual_seed(0)
    x = torch.rand(8, 4, 3, 64, 64) * 0.2
    y = torch.tensor([1.0, 0, 1, 0, 1, 0, 1, 0])[:, None]
    for b in range(0, 8, 2):
        x[b, b % 4, :, 20:40, 20:40] = 1.0
    net = AttentionMIL(image_size=64, channels=(4, 8, 8, 8, 8, 8))
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(60):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        out = net.extract(x)
    prob = torch.sigmoid(out["logits"])[:, 0]
    assert (prob[y[:, 0] == 1] > 0.5).all() and (prob[y[:, 0] == 0] < 0.5).all(), prob
    # attention picks the slice with the square in the positive scans
    for b in range(0, 8, 2):
        assert out["weights"][b].argmax() == b % 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"image_size": 32}, "at least 64"), ({"channels": (8, 8)}, "six convolution blocks")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AttentionMIL(**kwargs)
