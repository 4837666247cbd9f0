from __future__ import annotations

import pytest
import torch
from monai.inferers import SimpleInferer
from torch import nn

from ichbundles.engines import (
    AutocastInferer,
    bf16_supported,
    place_network,
    resolve_precision,
)


class _Net(nn.Module):
    """A conv and a linear layer; returns a tensor, a tuple or a dict as asked."""

    def __init__(self, output: str = "tensor") -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 2)
        self.output = output

    def forward(self, x, scale: float = 1.0):
        logits = self.head(self.conv(x).mean(dim=(2, 3))) * scale
        if self.output == "tuple":
            return logits, logits.argmax(dim=1)
        if self.output == "dict":
            return {"pred": logits, "index": logits.argmax(dim=1)}
        return logits


def test_float32_is_the_inner_inferer_unchanged():
    torch.manual_seed(0)
    net, x = _Net(), torch.randn(2, 3, 8, 8)
    out = AutocastInferer("float32")(x, net, scale=2.0)
    torch.testing.assert_close(out, SimpleInferer()(x, net, scale=2.0), rtol=0, atol=0)


@pytest.mark.parametrize("output", ["tensor", "tuple", "dict"])
def test_bfloat16_computes_in_bfloat16_and_returns_float32(output):
    torch.manual_seed(0)
    net, x = _Net(output), torch.randn(2, 3, 8, 8)
    seen = []
    net.conv.register_forward_hook(lambda module, inputs, out: seen.append(out.dtype))
    out = AutocastInferer("bfloat16")(x, net)
    reference = net(x)
    assert seen[0] == torch.bfloat16
    logits = {"tensor": lambda o: o, "tuple": lambda o: o[0], "dict": lambda o: o["pred"]}[output]
    assert logits(out).dtype == torch.float32
    torch.testing.assert_close(logits(out), logits(reference), rtol=0.05, atol=0.05)
    if output != "tensor":  # integer outputs stay integers
        index = out[1] if output == "tuple" else out["index"]
        assert index.dtype == torch.int64


def test_gradients_flow_through_the_bfloat16_forward():
    torch.manual_seed(0)
    net, x = _Net(), torch.randn(2, 3, 8, 8)
    AutocastInferer("bfloat16")(x, net).sum().backward()
    assert net.conv.weight.grad is not None and net.conv.weight.grad.dtype == torch.float32
    assert net.conv.weight.grad.abs().sum() > 0


def test_auto_follows_the_device():
    expected = torch.bfloat16 if bf16_supported("cpu") else torch.float32
    assert resolve_precision("auto", "cpu") == expected
    assert resolve_precision("float32", "cpu") == torch.float32
    assert resolve_precision("bfloat16", "cpu") == torch.bfloat16


def test_unknown_precision_is_refused_at_construction():
    with pytest.raises(ValueError, match="precision must be one of"):
        AutocastInferer("float16-ish")


@pytest.mark.parametrize("channels_last", [False, True])
def test_place_network_lays_out_conv_weights(channels_last):
    net = place_network(_Net(), "cpu", channels_last=channels_last)
    weight = net.conv.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert net.head.weight.is_contiguous()
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(net(x), _copy_contiguous(net)(x), rtol=1e-5, atol=1e-5)


def _copy_contiguous(net: _Net) -> _Net:
    copy = _Net()
    copy.load_state_dict(net.state_dict())
    return copy


@pytest.mark.parametrize(
    ("capability", "native"), [((7, 0), False), ((8, 0), True), ((9, 0), True)]
)
def test_cuda_bfloat16_counts_only_native_support(monkeypatch, capability, native):
    # V100 and T4 (7.x) emulate bfloat16: slower than float32, so `auto` keeps float32 there
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert bf16_supported("cuda:0") == native
    assert resolve_precision("auto", "cuda:0") == (torch.bfloat16 if native else torch.float32)
