"""Axial fusion of paper 001: 7-slice blocks with edge replication, local, masked, trainable."""

from __future__ import annotations

import pytest
import torch

from ichbundles.networks import AxialFusion, axial_block_index


def _mask(lengths, slices):
    return torch.arange(slices)[None] < torch.tensor(lengths)[:, None]


def test_block_index_replicates_edges_inside_each_scan():
    index = axial_block_index(_mask([5, 2], 5), context=3)
    assert index.shape == (2, 5, 7) and index.dtype == torch.int64
    assert index[0, 0].tolist() == [0, 0, 0, 0, 1, 2, 3]
    assert index[0, 4].tolist() == [1, 2, 3, 4, 4, 4, 4]
    assert index[1, 1].tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert index[1, 3].tolist() == [1] * 7  # padding points at the last real slice
    assert axial_block_index(_mask([3], 3), context=0)[0].tolist() == [[0], [1], [2]]
    with pytest.raises(ValueError, match="non-negative"):
        axial_block_index(_mask([3], 3), context=-1)


@pytest.mark.parametrize(("context", "channels"), [(3, (32, 32)), (1, (4, 8))])
def test_shapes_and_locality(context, channels):
    torch.manual_seed(0)
    net = AxialFusion(context=context, channels=channels).eval()
    x = torch.randn(2, 12, 6)
    mask = _mask([12, 9], 12)
    out = net(x, mask)
    assert out.shape == (2, 12, 6)
    changed = x.clone()
    changed[0, 0] += 5.0  # slice 0 of scan 0 reaches only the blocks of slices 0..context
    diff = (net(changed, mask) - out).abs().amax(dim=-1)
    assert (diff[0, : context + 1] > 0).all()
    assert (diff[0, context + 1 :] == 0).all() and (diff[1] == 0).all()
    padded = x.clone()
    padded[1, 9:] = 100.0  # padding never reaches real slices
    torch.testing.assert_close(net(padded, mask)[1, :9], out[1, :9])
    torch.testing.assert_close(net(x)[0], out[0])  # no mask: all real


def test_logit_inputs_fuse_the_logits_of_the_probabilities():
    torch.manual_seed(0)
    on_logits = AxialFusion(logit_inputs=True).eval()
    plain = AxialFusion().eval()
    plain.load_state_dict(on_logits.state_dict())
    probabilities = torch.tensor([0.02, 0.5, 0.9, 0.99, 0.9999, 0.3]).repeat(2, 5, 1)
    mask = _mask([5, 3], 5)
    with torch.inference_mode():
        expected = plain(torch.logit(probabilities), mask)
        torch.testing.assert_close(on_logits(probabilities, mask), expected)
        # certain descriptors (0 and 1) are clamped, not turned into infinities
        certain = on_logits(torch.tensor([0.0, 1.0]).repeat(1, 5, 3), _mask([5], 5))
    assert torch.isfinite(certain).all()


def test_rejects_other_than_two_convolutions():
    with pytest.raises(ValueError, match="two convolutions"):
        AxialFusion(channels=(8, 8, 8))


def test_learns_to_use_neighbours():
    # the label of a slice is "any" when it or a neighbour has a high descriptor: only the
    # block, not the slice alone, tells
    torch.manual_seed(0)
    x = torch.randn(64, 10, 6)
    spikes = (x[..., -1] > 1.2).float()
    target = torch.nn.functional.max_pool1d(spikes[:, None], 3, stride=1, padding=1)[:, 0]
    labels = target[..., None].expand(-1, -1, 6)
    net = AxialFusion(context=1, channels=(8, 8))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), labels)
        loss.backward()
        optimizer.step()
    accuracy = ((net(x) > 0).float() == labels).float().mean()
    assert loss.item() < 0.2 and accuracy > 0.93
