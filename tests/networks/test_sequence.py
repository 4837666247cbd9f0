"""Tests for the masked bidirectional LSTM."""

from __future__ import annotations

import warnings

import pytest
import torch

from ichbundles.networks.sequence import MaskedBiLSTM, prefix_lengths

LENGTHS = (7, 3, 1, 5)
S = 7
F = 10


def _mask(lengths, s=S):
    return torch.arange(s)[None] < torch.tensor(lengths)[:, None]


@pytest.fixture
def lstm():
    torch.manual_seed(0)
    return MaskedBiLSTM(F, hidden=8, layers=2, dropout=0.3).eval()


def test_shape_and_zero_padding(lstm):
    mask = _mask(LENGTHS)
    out = lstm(torch.randn(len(LENGTHS), S, F), mask)
    assert out.shape == (len(LENGTHS), S, 16)
    assert lstm.out_features == 16
    assert (out[~mask] == 0).all()
    assert (out[mask] != 0).any(dim=-1).all()


@pytest.mark.parametrize("fill", ["zeros", "random", "huge"])
def test_padding_never_reaches_valid_slices(lstm, fill):
    torch.manual_seed(1)
    scans = [torch.randn(n, F) for n in LENGTHS]
    # Reference: each scan alone, not padded at all.
    with torch.no_grad():
        alone = [lstm(scan[None])[0] for scan in scans]

    pad = {"zeros": torch.zeros, "random": torch.randn, "huge": lambda *s: torch.full(s, 1e6)}
    x = torch.stack([torch.cat([s, pad[fill](S - len(s), F)]) for s in scans])
    with torch.no_grad():
        out = lstm(x, _mask(LENGTHS))
    for i, ref in enumerate(alone):
        torch.testing.assert_close(out[i, : LENGTHS[i]], ref, rtol=0, atol=1e-6)


def test_no_gradient_to_padded_slices(lstm):
    x = torch.randn(len(LENGTHS), S, F, requires_grad=True)
    mask = _mask(LENGTHS)
    lstm(x, mask).sum().backward()
    assert (x.grad[~mask] == 0).all()
    assert (x.grad[mask] != 0).any(dim=-1).all()


def test_mask_none_equals_all_valid(lstm):
    x = torch.randn(2, S, F)
    with torch.no_grad():
        torch.testing.assert_close(lstm(x), lstm(x, torch.ones(2, S, dtype=torch.bool)))


def test_all_padded_scan_gives_zeros(lstm):
    x = torch.randn(2, S, F)
    with torch.no_grad():
        out = lstm(x, _mask([4, 0]))
    assert (out[1] == 0).all()
    assert (out[0, :4] != 0).any(dim=-1).all()


def test_mask_must_be_a_prefix(lstm):
    mask = _mask([4, 6])
    mask[0, 0] = False
    with pytest.raises(ValueError, match="prefix"):
        lstm(torch.randn(2, S, F), mask)


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int64, torch.float32])
def test_prefix_lengths(dtype):
    lengths = prefix_lengths(_mask([3, 0, 7]).to(dtype))
    assert lengths.tolist() == [3, 0, 7]
    assert lengths.device.type == "cpu"


def test_single_layer_accepts_dropout():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lstm = MaskedBiLSTM(F, hidden=4, layers=1, dropout=0.5)
    assert lstm(torch.randn(1, 3, F), _mask([2], 3)).shape == (1, 3, 8)
