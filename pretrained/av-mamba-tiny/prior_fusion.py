"""Gated cross-attention fusion of a linguistic prior into the mixture embedding (ELEGANCE's input guidance hook).

The mixture embedding attends to the prior (query: mixture frames; key/value: prior tokens), a sigmoid gate
computed from the mixture decides how much of what was retrieved to let through, and the gated result is
concatenated with the mixture embedding and projected back to its width. The backbone knows nothing of where the
prior comes from: any ``(batch, tokens, dim)`` sequence works, and zeros stand in when none is given.
"""

from __future__ import annotations

import torch
from torch import nn


class GatedCrossAttentionFusion(nn.Module):
    r"""``(batch, frames, channels)`` mixture embedding + ``(batch, tokens, prior_dim)`` prior -> ``(batch, frames, channels)``.

    Args:
        channels: width of the mixture embedding.
        prior_dim: width of the prior embeddings.
        num_heads: attention heads (must divide ``channels``).
    """

    def __init__(self, channels: int, *, prior_dim: int, num_heads: int):
        super().__init__()
        self.prior_dim = prior_dim
        self.prior_projection = nn.Linear(prior_dim, channels)
        self.attention = nn.MultiheadAttention(channels, num_heads, batch_first=True)
        self.gate = nn.Linear(channels, channels)
        self.output_projection = nn.Linear(2 * channels, channels)

    def forward(
        self, mixture: torch.Tensor, prior: torch.Tensor, prior_attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        keys = self.prior_projection(prior)
        ignored = None if prior_attention_mask is None else prior_attention_mask == 0
        retrieved, _ = self.attention(mixture, keys, keys, key_padding_mask=ignored, need_weights=False)
        gated = torch.sigmoid(self.gate(mixture)) * retrieved
        return self.output_projection(torch.cat([mixture, gated], dim=-1))
