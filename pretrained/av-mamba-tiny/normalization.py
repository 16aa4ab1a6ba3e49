"""Global layer normalisation (gLN) that honours padding.

gLN normalises over channels and every time axis at once (`GroupNorm(1, channels)`), as in Conv-TasNet, DPRNN and
USEV. With padding the statistics must come from the real positions only, or a padded batch would give different
outputs from each example alone; `mask` marks the real positions.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class GlobalLayerNorm(nn.Module):
    r"""gLN with a per-channel affine transform.

    Args:
        channels: size of dimension 1 of the input.
        eps: added to the variance.

    Shapes: ``x`` is ``(batch, channels, *positions)``; ``mask`` broadcasts to ``(batch, 1, *positions)`` (1 on real
    positions, 0 on padding) or None when every position is real (then it is exactly ``GroupNorm(1, channels)``). Statistics are computed in float32 whatever the input dtype.
    """

    def __init__(self, channels: int, *, eps: float = 1e-8):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return F.group_norm(x.float(), 1, self.weight.float(), self.bias.float(), self.eps).to(x.dtype)
        dims = tuple(range(1, x.dim()))
        values = x.float()
        mask = mask.to(values.dtype).expand(x.shape[0], 1, *x.shape[2:])
        count = mask.sum(dim=dims, keepdim=True).clamp_min(1.0) * x.shape[1]
        mean = (values * mask).sum(dim=dims, keepdim=True) / count
        variance = ((values - mean) * mask).pow(2).sum(dim=dims, keepdim=True) / count
        normalised = (values - mean) * torch.rsqrt(variance + self.eps)
        affine_shape = (1, -1) + (1,) * (x.dim() - 2)
        return (normalised * self.weight.view(affine_shape) + self.bias.view(affine_shape)).to(x.dtype)


def apply_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``x * mask`` (zeroing padding), or ``x`` itself when there is no padding (``mask`` None)."""
    return x if mask is None else x * mask.to(x.dtype)
