"""Tests for masked MIL pooling (attention, gated attention, mean)."""

from __future__ import annotations

import pytest
import torch

from ichbundles.networks.mil_pooling import MIL_POOLING_MODES, MILPooling

LENGTHS = (7, 3, 5)
S = 7


def _mask(lengths=LENGTHS, s=S):
    return torch.arange(s)[None] < torch.tensor(lengths)[:, None]


@pytest.mark.parametrize("mode", MIL_POOLING_MODES)
def test_weights_sum_to_one_and_vanish_on_padding(mode):
    torch.manual_seed(0)
    pool = MILPooling(8, hidden=5, mode=mode)
    z = torch.randn(len(LENGTHS), S, 8)
    bag, weights = pool(z, _mask())
    assert bag.shape == (3, 8) and weights.shape == (3, S)
    torch.testing.assert_close(weights.sum(1), torch.ones(3))
    assert (weights[~_mask()] == 0).all()
    assert (weights[_mask()] > 0).all()


@pytest.mark.parametrize("mode", MIL_POOLING_MODES)
def test_padding_content_does_not_matter(mode):
    torch.manual_seed(0)
    pool = MILPooling(4, hidden=6, mode=mode)
    z = torch.randn(3, S, 4)
    noisy = z.clone()
    noisy[~_mask()] = float("inf")
    alone = [pool(z[i : i + 1, :n])[0] for i, n in enumerate(LENGTHS)]
    bag, _ = pool(noisy, _mask())
    torch.testing.assert_close(bag, torch.cat(alone))


def test_mean_mode_is_the_average_of_valid_instances():
    z = torch.randn(3, S, 4)
    bag, weights = MILPooling(4, mode="mean")(z, _mask())
    for i, n in enumerate(LENGTHS):
        torch.testing.assert_close(bag[i], z[i, :n].mean(0))
        torch.testing.assert_close(weights[i, :n], torch.full((n,), 1.0 / n))


def test_attention_follows_the_formula():
    torch.manual_seed(0)
    pool = MILPooling(4, hidden=3, mode="gated")
    z = torch.randn(1, 5, 4)
    v, u, w = pool.tanh_branch[0], pool.gate[0], pool.score
    scores = (torch.tanh(v(z)) * torch.sigmoid(u(z))) @ w.weight.T
    torch.testing.assert_close(pool.weights(z), torch.softmax(scores[..., 0], dim=1))


def test_permuting_instances_permutes_weights():
    torch.manual_seed(0)
    pool = MILPooling(4, hidden=3)
    z = torch.randn(1, 6, 4)
    order = torch.randperm(6)
    bag, weights = pool(z)
    bag_p, weights_p = pool(z[:, order])
    torch.testing.assert_close(bag_p, bag)
    torch.testing.assert_close(weights_p, weights[:, order])


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="mode must be one of"):
        MILPooling(4, mode="max")
