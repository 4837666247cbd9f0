"""Sequence heads over the slices of a scan."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["MaskedBiLSTM", "prefix_lengths"]


def prefix_lengths(mask: torch.Tensor) -> torch.Tensor:
    """Number of valid slices per scan, checking that valid slices form a prefix.

    Args:
        mask: boolean ``(B, S)``, ``True`` for valid slices.

    Returns:
        int64 ``(B,)`` lengths on the CPU, as ``pack_padded_sequence`` wants them.

    Raises:
        ValueError: when a valid slice follows a padded one.
    """
    mask = mask.bool()
    lengths = mask.sum(dim=1)
    # A trace would bake this data-dependent check in as a constant; only check in eager mode.
    if not torch.jit.is_tracing():
        positions = torch.arange(mask.shape[1], device=mask.device)
        if not torch.equal(mask, positions[None] < lengths[:, None]):
            raise ValueError(
                "valid slices must be a prefix of each sequence (the collate pads at the end)"
            )
    return lengths.cpu()


class MaskedBiLSTM(nn.Module):
    """Bidirectional LSTM over the slices of padded scans.

    Scans of different lengths are batched as ``(B, S, F)`` with a boolean mask ``(B, S)``.
    By convention the valid slices of each scan are a prefix (the collate pads at the end), so
    the mask is described by its per-scan lengths and the LSTM runs on a packed sequence: the
    backward direction starts at each scan's last valid slice and padded slices never influence
    valid ones. Outputs at padded positions are zero.

    Args:
        in_features: features per slice, ``F``.
        hidden: hidden units per direction.
        layers: stacked LSTM layers.
        dropout: dropout between LSTM layers (ignored by PyTorch for one layer).

    Example::

        lstm = MaskedBiLSTM(256, hidden=64)
        out = lstm(torch.randn(2, 10, 256), torch.arange(10)[None] < torch.tensor([[10], [7]]))
        out.shape  # (2, 10, 128)
    """

    def __init__(
        self, in_features: int, hidden: int = 512, layers: int = 2, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.out_features = 2 * hidden
        self.lstm = nn.LSTM(
            input_size=in_features,
            hidden_size=hidden,
            num_layers=layers,
            dropout=dropout if layers > 1 else 0.0,
            batch_first=True,
            bidirectional=True,
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Run the LSTM over the valid slices.

        Args:
            x: ``(B, S, F)`` slice features.
            mask: boolean ``(B, S)``, ``True`` for valid slices, a prefix of each scan;
                ``None`` means all slices are valid.

        Returns:
            ``(B, S, 2 * hidden)``, zero at padded slices.
        """
        if mask is None:
            return self.lstm(x)[0]
        lengths = prefix_lengths(mask)
        # pack_padded_sequence rejects empty scans; an all-padded scan runs on its first slice
        # and that output is zeroed below.
        packed = pack_padded_sequence(
            x, lengths.clamp(min=1), batch_first=True, enforce_sorted=False
        )
        out, _ = pad_packed_sequence(
            self.lstm(packed)[0], batch_first=True, total_length=x.shape[1]
        )
        return out.masked_fill(~mask.bool()[..., None], 0.0)
