"""USEV's visual temporal network (V-TCN): lip embeddings to the visual cue the extractor fuses."""

from __future__ import annotations

import torch
from torch import nn

from .normalization import GlobalLayerNorm, apply_mask


class VisualConvBlock(nn.Module):
    r"""ReLU, gLN, 1x1 conv up, ReLU, gLN, depthwise conv (kernel 3), PReLU, gLN, 1x1 conv down, plus the input.

    ``(batch, channels, frames) -> (batch, channels, frames)``; padded frames are zeroed before the depthwise
    convolution so they never leak into the last real frame.
    """

    def __init__(self, channels: int, hidden_channels: int):
        super().__init__()
        self.norm_in = GlobalLayerNorm(channels)
        self.expand = nn.Conv1d(channels, hidden_channels, 1, bias=False)
        self.norm_expanded = GlobalLayerNorm(hidden_channels)
        self.depthwise = nn.Conv1d(hidden_channels, hidden_channels, 3, padding=1, groups=hidden_channels, bias=False)
        self.activation = nn.PReLU()
        self.norm_depthwise = GlobalLayerNorm(hidden_channels)
        self.project = nn.Conv1d(hidden_channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # mask: (batch, 1, frames), or None without padding
        hidden = self.expand(self.norm_in(torch.relu(x), mask))
        hidden = apply_mask(self.norm_expanded(torch.relu(hidden), mask), mask)
        hidden = self.norm_depthwise(self.activation(self.depthwise(hidden)), mask)
        return x + self.project(hidden)


class VisualTCN(nn.Module):
    r"""``(batch, frames, embedding_dim)`` lip embeddings -> ``(batch, channels, frames)`` visual cue.

    A 1x1 projection to ``channels`` followed by ``num_blocks`` :class:`VisualConvBlock`.
    """

    def __init__(self, embedding_dim: int, *, channels: int, hidden_channels: int, num_blocks: int):
        super().__init__()
        self.project = nn.Conv1d(embedding_dim, channels, 1, bias=False)
        self.blocks = nn.ModuleList(VisualConvBlock(channels, hidden_channels) for _ in range(num_blocks))

    def forward(self, lip_embeds: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # mask: (batch, 1, frames), or None without padding
        cue = apply_mask(self.project(lip_embeds.transpose(1, 2)), mask)
        for block in self.blocks:
            cue = apply_mask(block(cue, mask), mask)
        return cue
