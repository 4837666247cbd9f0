"""Joining the stage 1 and fusion checkpoints into the inference network's."""

from __future__ import annotations

import pytest
import torch

from ichbundles.adjacent import join_stage_checkpoints
from ichbundles.networks import AdjacentSliceNet, AxialFusion, SliceClassifier


def test_joined_network_runs_both_trained_stages(tmp_path):
    torch.manual_seed(0)
    stage1, fusion = SliceClassifier("resnet10_tiny").eval(), AxialFusion().eval()
    torch.save(stage1.state_dict(), tmp_path / "stage1.pt")
    torch.save({"model": fusion.state_dict()}, tmp_path / "fusion.pt")  # CheckpointSaver layout
    net = AdjacentSliceNet("resnet10_tiny")
    out = join_stage_checkpoints(
        tmp_path / "stage1.pt", tmp_path / "fusion.pt", tmp_path / "m.pt", net
    )

    joined = AdjacentSliceNet("resnet10_tiny").eval()
    joined.load_state_dict(torch.load(out, weights_only=True))
    x, mask = torch.rand(1, 6, 3, 32, 32), torch.ones(1, 6, dtype=torch.bool)
    with torch.inference_mode():
        expected = fusion(torch.sigmoid(stage1(x, mask)), mask)
        torch.testing.assert_close(joined(x, mask), expected)


def test_weights_that_do_not_fit_write_nothing(tmp_path):
    torch.save(SliceClassifier("resnet10_tiny").state_dict(), tmp_path / "stage1.pt")
    torch.save(AxialFusion(channels=(8, 8)).state_dict(), tmp_path / "fusion.pt")
    with pytest.raises(RuntimeError, match="size mismatch"):
        join_stage_checkpoints(
            tmp_path / "stage1.pt",
            tmp_path / "fusion.pt",
            tmp_path / "m.pt",
            AdjacentSliceNet("resnet10_tiny"),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fusion.pt", "stage1.pt"]
