"""Tests for the CNN-LSTM slice-sequence classifier."""

from __future__ import annotations

import pytest
import torch

from ichbundles.constants import NUM_CLASSES
from ichbundles.networks import CNNLSTM, build_backbone, scan_logits

LENGTHS = (6, 2, 4)
S = 6


def _mask(lengths, s=S):
    return torch.arange(s)[None] < torch.tensor(lengths)[:, None]


@pytest.fixture
def net():
    torch.manual_seed(0)
    return CNNLSTM("resnet10_tiny", hidden=16).eval()


@pytest.mark.parametrize(
    ("backbone", "in_channels", "num_classes"),
    [("resnet10_tiny", 3, NUM_CLASSES), ("resnet18_small", 1, 2), ("resnet10_tiny", 3, 1)],
)
def test_shapes_with_padding(backbone, in_channels, num_classes):
    net = CNNLSTM(backbone, in_channels=in_channels, num_classes=num_classes, hidden=8).eval()
    x = torch.randn(len(LENGTHS), S, in_channels, 32, 32)
    with torch.no_grad():
        out = net(x, _mask(LENGTHS))
        assert out.shape == (len(LENGTHS), S, num_classes)
        assert net(x).shape == out.shape


def test_defaults_follow_the_paper():
    net = CNNLSTM()
    assert net.features == 2048
    assert net.sequence.lstm.hidden_size == 512
    assert net.sequence.lstm.num_layers == 2
    assert net.sequence.lstm.bidirectional
    assert net.classifier.out_features == NUM_CLASSES == 6


@pytest.mark.parametrize("fill", ["zeros", "random"])
def test_padded_slices_do_not_change_valid_outputs(net, fill):
    torch.manual_seed(1)
    scans = [torch.rand(n, 3, 32, 32) for n in LENGTHS]
    with torch.no_grad():
        alone = [net(scan[None])[0] for scan in scans]
        pad = torch.zeros if fill == "zeros" else torch.randn
        x = torch.stack([torch.cat([s, pad(S - len(s), 3, 32, 32)]) for s in scans])
        out = net(x, _mask(LENGTHS))
    for i, ref in enumerate(alone):
        torch.testing.assert_close(out[i, : LENGTHS[i]], ref, rtol=0, atol=1e-5)


def test_encoder_sees_only_valid_slices(net):
    seen = []
    net.encoder.register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape[0]))
    with torch.no_grad():
        features = net.encode(torch.randn(len(LENGTHS), S, 3, 32, 32), _mask(LENGTHS))
    assert seen == [sum(LENGTHS)]
    assert features.shape == (len(LENGTHS), S, net.features)
    assert (features[~_mask(LENGTHS)] == 0).all()


def test_scan_logits_is_masked_max():
    logits = torch.tensor(
        [
            [[0.0, -1.0], [2.0, -3.0], [9.0, 9.0]],
            [[-5.0, 1.0], [-4.0, 0.5], [-6.0, 7.0]],
        ]
    )
    mask = _mask([2, 3], 3)
    expected = torch.tensor([[2.0, -1.0], [-4.0, 7.0]])
    torch.testing.assert_close(scan_logits(logits, mask), expected)
    torch.testing.assert_close(scan_logits(logits), torch.tensor([[9.0, 9.0], [-4.0, 7.0]]))
    empty = scan_logits(logits, _mask([0, 3], 3))
    assert torch.isneginf(empty[0]).all()


def test_scan_logits_matches_max_probability(net):
    x = torch.randn(len(LENGTHS), S, 3, 32, 32)
    mask = _mask(LENGTHS)
    with torch.no_grad():
        slice_logits = net(x, mask)
    probs = torch.sigmoid(scan_logits(slice_logits, mask))
    for i, n in enumerate(LENGTHS):
        torch.testing.assert_close(probs[i], torch.sigmoid(slice_logits[i, :n]).amax(0))


def test_gradient_reaches_encoder_and_training_step_learns():
    torch.manual_seed(0)
    net = CNNLSTM("resnet10_tiny", hidden=16, dropout=0.1)
    x = torch.rand(2, 8, 3, 64, 64)
    mask = _mask([8, 5], 8)
    target = torch.zeros(2, 8, NUM_CLASSES)
    target[0, 2:5] = 1.0
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        logits = net(x, mask)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[mask], target[mask])
        optimiser.zero_grad()
        loss.backward()
        losses.append(loss.item())
        optimiser.step()
        if len(losses) == 1:
            for name, param in net.named_parameters():
                assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert losses[-1] < losses[0]


def test_pretrained_encoder(tmp_path):
    encoder, _ = build_backbone("resnet10_tiny")
    path = tmp_path / "encoder.pt"
    torch.save(encoder.state_dict(), path)
    net = CNNLSTM("resnet10_tiny", hidden=8, pretrained=path)
    for key, value in encoder.state_dict().items():
        assert torch.equal(net.encoder.state_dict()[key], value), key


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_trace_matches_eager(net):
    x = torch.randn(len(LENGTHS), S, 3, 32, 32)
    with torch.no_grad():
        traced = torch.jit.trace(net, (x, _mask(LENGTHS)))
        # Other batch sizes, scan lengths and padding than the example input.
        for lengths, s in [(LENGTHS, S), ((3, 5), 5), ((1,), 4), ((9, 9, 2, 7), 9)]:
            x = torch.randn(len(lengths), s, 3, 32, 32)
            torch.testing.assert_close(traced(x, _mask(lengths, s)), net(x, _mask(lengths, s)))


def test_onnx_export_matches_eager(net, tmp_path):
    import onnxruntime as ort

    x = torch.randn(len(LENGTHS), S, 3, 32, 32)
    mask = _mask(LENGTHS)
    path = tmp_path / "cnn_lstm.onnx"
    torch.onnx.export(
        net,
        (x, mask),
        path,
        input_names=["image", "mask"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch", 1: "slices"}, "mask": {0: "batch", 1: "slices"}},
        dynamo=False,  # the dynamo exporter fails on pack_padded_sequence with dynamic slices
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"image": x.numpy(), "mask": mask.numpy()})
    with torch.no_grad():
        expected = net(x, mask)
    torch.testing.assert_close(torch.from_numpy(onnx_out)[mask], expected[mask], atol=1e-4, rtol=0)
