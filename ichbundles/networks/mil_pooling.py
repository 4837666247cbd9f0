"""Multiple-instance pooling of slice features into one scan vector, with padded slices masked.

MONAI's ``MILModel`` has attention pooling but assumes every bag has the same number of
instances and has no gated variant; scans have different slice counts, so the pooling here
takes the ``(B, S)`` mask of :func:`ichbundles.engines.collate_scans` and keeps padding out of
the softmax.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MIL_POOLING_MODES", "MILPooling"]

#: ``attention``: Ilse et al. 2018, ``a_i = softmax_i(w^T tanh(V z_i))``; ``gated``: the same
#: with ``tanh(V z_i) * sigmoid(U z_i)``; ``mean``: the plain average (paper 000's ``nAL``).
MIL_POOLING_MODES: tuple[str, ...] = ("attention", "gated", "mean")


class MILPooling(nn.Module):
    """Pools ``(B, S, M)`` instance features into ``(B, M)`` and returns the weights used.

    Args:
        in_features: ``M``, features per instance.
        hidden: ``L``, units of the attention layer (50 in paper 000).
        mode: one of :data:`MIL_POOLING_MODES`.

    Example::

        pool = MILPooling(8, hidden=50, mode="gated")
        z = torch.randn(2, 30, 8)
        mask = torch.arange(30)[None] < torch.tensor([[30], [21]])
        bag, weights = pool(z, mask)  # (2, 8), (2, 30); weights sum to 1, 0 on padding
    """

    def __init__(self, in_features: int, hidden: int = 50, mode: str = "attention") -> None:
        super().__init__()
        if mode not in MIL_POOLING_MODES:
            raise ValueError(f"mode must be one of {MIL_POOLING_MODES}, got {mode!r}")
        self.mode = mode
        if mode != "mean":
            self.tanh_branch = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh())
            self.score = nn.Linear(hidden, 1, bias=False)
        if mode == "gated":
            self.gate = nn.Sequential(nn.Linear(in_features, hidden), nn.Sigmoid())

    def weights(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooling weights ``(B, S)``: non-negative, summing to 1 over the valid instances.

        Args:
            z: ``(B, S, M)`` instance features.
            mask: boolean ``(B, S)`` of valid instances, or ``None`` for all valid.
        """
        if self.mode == "mean":
            scores = z.new_zeros(z.shape[:2])
        else:
            hidden = self.tanh_branch(z)
            if self.mode == "gated":
                hidden = hidden * self.gate(z)
            scores = self.score(hidden).squeeze(-1)
        if mask is not None:
            scores = scores.masked_fill(~mask.bool(), float("-inf"))
        return torch.softmax(scores, dim=1)

    def forward(
        self, z: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted sum of the instances and the weights.

        Args:
            z: ``(B, S, M)`` instance features (values at padded instances are ignored).
            mask: boolean ``(B, S)`` of valid instances, or ``None`` for all valid.

        Returns:
            ``(B, M)`` bag features and ``(B, S)`` weights, zero at padded instances.
        """
        weights = self.weights(z, mask)
        # masked_fill rather than a product: a non-finite feature at a padded slice must not
        # leak into the sum as 0 * inf.
        if mask is not None:
            z = z.masked_fill(~mask.bool()[..., None], 0.0)
        return torch.einsum("bs,bsm->bm", weights, z), weights
