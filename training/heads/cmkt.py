"""CMKT (cross-modality knowledge transfer): a cross-modal attention predicts the frozen LLM's token embeddings
``z_t`` of the transcript from the extractor's features; the loss is ``sum_t (1 - cos(z_t, z^_t))`` over real
tokens (mean over the batch), weighted ``1 - a`` against the extraction loss's ``a``.

Misalignment strategy: in training each example's LLM embedding sequence is shifted in time by a random number of
tokens in ``[-max_shift, max_shift]`` (drawn by the dataset, see ``training.data``); tokens shifted out are
dropped and vacated positions carry no loss.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import GuidanceHead


def sinusoidal_positions(length: int, dim: int, device=None) -> torch.Tensor:
    """``(length, dim)`` Transformer sinusoidal position codes."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(position * frequency)
    codes[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return codes


def shift_sequence(values: torch.Tensor, mask: torch.Tensor, shift: torch.Tensor):
    r"""Delay row ``b`` of ``values (batch, tokens, dim)`` by ``shift[b]`` tokens (negative: advance).

    Returns the shifted values and their ``(batch, tokens)`` mask: a position is real when it and its source both
    lie inside the row's real tokens (so the result does not depend on how far the batch is padded).
    """
    tokens = values.shape[1]
    source = torch.arange(tokens, device=values.device)[None, :] - shift[:, None]  # (batch, tokens)
    inside = (source >= 0) & (source < tokens)
    source = source.clamp(0, tokens - 1)
    shifted = values.gather(1, source[..., None].expand(-1, -1, values.shape[-1]))
    return shifted, inside & mask.bool() & mask.gather(1, source).bool()


class CrossModalKnowledgeTransferHead(GuidanceHead):
    r"""
    Args:
        feature_channels: channels of the backbone's ``extractor_features``.
        text_dim: width of the LLM token embeddings to predict.
        attention_dim: width the attention works in (the prediction is projected up to ``text_dim``).
        num_heads: heads of the cross-modal attention.
    """

    name = "cmkt"

    def __init__(self, feature_channels: int, text_dim: int, attention_dim: int = 128, num_heads: int = 4):
        super().__init__()
        if attention_dim % num_heads:
            raise ValueError(f"CMKT attention heads ({num_heads}) must divide its width ({attention_dim})")
        self.attention_dim = attention_dim
        self.feature_projection = nn.Linear(feature_channels, attention_dim)
        self.query_projection = nn.Linear(attention_dim, attention_dim)
        self.attention = nn.MultiheadAttention(attention_dim, num_heads, batch_first=True)
        self.output_projection = nn.Linear(attention_dim, text_dim)

    def forward(self, output, batch: dict) -> torch.Tensor:
        targets, mask = (
            batch["transcript_embeds"],
            batch["transcript_embeds_mask"],
        )  # (batch, tokens, dim), (batch, tokens)
        if self.training:
            targets, mask = shift_sequence(targets, mask, batch["embedding_shift"])
        keys = self.feature_projection(output.extractor_features)  # (batch, frames, dim)
        positions = sinusoidal_positions(targets.shape[1], self.attention_dim, keys.device)
        queries = self.query_projection(positions)[None].expand(targets.shape[0], -1, -1)
        padding = output.extractor_attention_mask == 0
        read, _ = self.attention(queries, keys, keys, key_padding_mask=padding, need_weights=False)
        predicted = self.output_projection(read)  # (batch, tokens, dim)
        cosine = nn.functional.cosine_similarity(predicted, targets.to(predicted.dtype), dim=-1)
        return ((1.0 - cosine) * mask.to(cosine.dtype)).sum(1).mean()
