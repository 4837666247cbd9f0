"""Paper 000's slice labels from attention: none in a negative scan; in a positive one, the
slices whose min-max normalised attention exceeds 0.5."""

from __future__ import annotations

import pytest
import torch

from ichbundles.mil import attention_slice_predictions


@pytest.mark.parametrize("probability", [0.0, 0.2, 0.49])
def test_negative_scan_has_no_positive_slice(probability):
    weights = torch.tensor([[0.1, 0.6, 0.3]])
    scores, labels = attention_slice_predictions(torch.tensor([probability]), weights)
    assert not labels.any()
    torch.testing.assert_close(scores, probability * torch.tensor([[0.0, 1.0, 0.4]]))


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ([0.125, 0.625, 0.375, 0.125], [False, True, False, False]),  # exactly 0, 1, 0.5, 0
        ([0.1, 0.5, 0.31, 0.09], [False, True, True, False]),  # 0.3 -> 0.537...
        ([0.4, 0.2, 0.4], [True, False, True]),
    ],
)
def test_positive_scan_labels_slices_above_half_normalised_attention(weights, expected):
    scores, labels = attention_slice_predictions(torch.tensor([0.9]), torch.tensor([weights]))
    assert labels[0].tolist() == expected
    w = torch.tensor(weights)
    torch.testing.assert_close(scores[0], 0.9 * (w - w.min()) / (w.max() - w.min()))


@pytest.mark.parametrize("n", [1, 4, 40])
def test_uniform_weights_make_every_slice_of_a_positive_scan_positive(n):
    # mean pooling (nAL), or one slice; softmax rounding must not split ties
    weights = torch.softmax(torch.zeros(2, n), dim=1)
    scores, labels = attention_slice_predictions(torch.tensor([0.8, 0.3]), weights)
    assert labels[0].all() and not labels[1].any()
    torch.testing.assert_close(scores, torch.tensor([[0.8], [0.3]]).expand(2, n))


def test_padding_is_zero_and_ignored_by_the_normalisation():
    weights = torch.tensor([[0.2, 0.6, 0.2, 9.0, -9.0], [0.5, 0.5, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, False, False], [True, True, False, False, False]])
    scores, labels = attention_slice_predictions(torch.tensor([0.7, 0.9]), weights, mask)
    assert labels.tolist() == [[False, True, False, False, False], [True, True] + [False] * 3]
    torch.testing.assert_close(scores[0], torch.tensor([0.0, 0.7, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(scores[1], torch.tensor([0.9, 0.9, 0.0, 0.0, 0.0]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scan_score_is_the_maximum_slice_score(seed):
    generator = torch.Generator().manual_seed(seed)
    weights = torch.softmax(torch.randn(6, 12, generator=generator), dim=1)
    lengths = torch.randint(1, 13, (6,), generator=generator)
    mask = torch.arange(12)[None] < lengths[:, None]
    probability = torch.rand(6, generator=generator)
    scores, labels = attention_slice_predictions(probability, weights, mask)
    torch.testing.assert_close(scores.amax(dim=1), probability)
    assert (scores >= 0).all() and not labels[~mask].any()


def test_threshold_moves_both_cut_offs():
    weights = torch.tensor([[0.125, 0.625, 0.375, 0.125]])  # normalised 0, 1, 0.5, 0
    _, labels = attention_slice_predictions(torch.tensor([0.35]), weights, threshold=0.3)
    assert labels[0].tolist() == [False, True, True, False]
    _, labels = attention_slice_predictions(torch.tensor([0.25]), weights, threshold=0.3)
    assert not labels.any()
