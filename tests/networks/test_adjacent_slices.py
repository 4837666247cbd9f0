"""AdjacentSliceNet: stage 1 descriptors then axial fusion, and stage 1 alone from one network."""

from __future__ import annotations

import copy

import pytest
import torch

from ichbundles.networks import AdjacentSliceNet


def _net() -> AdjacentSliceNet:
    torch.manual_seed(0)
    return AdjacentSliceNet("resnet10_tiny").eval()


def test_fused_output_is_fusion_of_stage1_probabilities():
    net = _net()
    x = torch.rand(2, 9, 3, 32, 32)
    mask = torch.arange(9)[None] < torch.tensor([[9], [6]])
    with torch.inference_mode():
        stage1 = net.stage1(x, mask)
        expected = net.fusion(torch.sigmoid(stage1), mask)
        fused = net(x, mask)
        alone = net.with_fusion(False)(x, mask)
    assert fused.shape == (2, 9, 6)
    torch.testing.assert_close(fused, expected)
    torch.testing.assert_close(alone, stage1)
    assert not torch.allclose(fused[mask], alone[mask])


@pytest.mark.parametrize("bias", [0.0, 9.0, -9.0, 30.0])
def test_logit_input_fusion_matches_a_float64_reference(bias):
    # confident stage 1 logits: in float32, sigmoid then logit loses their digits (about 0.01
    # at 9) and the fused logits with them; the joined network must not take that round trip
    torch.manual_seed(0)
    net = AdjacentSliceNet("resnet10_tiny", fusion_logit_inputs=True).eval()
    with torch.no_grad():
        net.stage1.classifier.bias.fill_(bias)
    x = torch.rand(2, 9, 3, 32, 32)
    mask = torch.arange(9)[None] < torch.tensor([[9], [6]])
    reference = copy.deepcopy(net).double()
    with torch.inference_mode():
        fused = net(x, mask)
        stage1 = reference.stage1(x.double(), mask)
        expected = reference.fusion(torch.sigmoid(stage1), mask)
    torch.testing.assert_close(fused[mask].double(), expected[mask], atol=1e-4, rtol=1e-5)


def test_fusion_logit_inputs_reach_the_fusion_network():
    assert AdjacentSliceNet("resnet10_tiny", fusion_logit_inputs=True).fusion.logit_inputs
    assert not AdjacentSliceNet("resnet10_tiny").fusion.logit_inputs


def test_with_fusion_shares_the_weights():
    net = _net()
    baseline = net.with_fusion(False)
    assert net.use_fusion and not baseline.use_fusion
    assert baseline.stage1 is net.stage1
    with torch.no_grad():
        net.stage1.classifier.bias.add_(1.0)
    assert torch.equal(baseline.stage1.classifier.bias, net.stage1.classifier.bias)


def test_padding_does_not_reach_the_real_slices():
    net = _net()
    x = torch.rand(1, 5, 3, 32, 32)
    padded = torch.cat([x, torch.full((1, 3, 3, 32, 32), 50.0)], dim=1)
    mask = torch.arange(8)[None] < 5
    with torch.inference_mode():
        torch.testing.assert_close(net(padded, mask)[:, :5], net(x), atol=1e-5, rtol=1e-5)


def test_state_dict_holds_both_stages():
    prefixes = {key.split(".")[0] for key in _net().state_dict()}
    assert prefixes == {"stage1", "fusion"}
