"""Intermediate guidance (ELEGANCE, III.A.2): a gated cross-attention inserted in every block of the LLM lets its
hidden states (queries) read the extractor's features (keys/values, linearly projected); the result is added as a
residual scaled by ``alpha``. The LLM's next-token-prediction loss on the target transcript, conditioned on what it
read, trains the extractor.

The cross-attentions are attached with forward hooks on the LLM's block stack, so any Hugging Face causal LM (and
any BERT/RoBERTa run as a causal decoder) works unchanged; they live in this head, not in the LLM.
"""

from __future__ import annotations

import torch
from torch import nn

from ..language_model import find_decoder_layers, freeze
from .base import GuidanceHead

LORA_TARGETS = r".*\.(q_proj|v_proj|query|value|c_attn)$"


def pool_frames(features: torch.Tensor, mask: torch.Tensor, stride: int):
    r"""Average ``(batch, frames, channels)`` features over windows of ``stride`` frames (real frames only); a
    pooled frame is real when its window holds one."""
    frames = features.shape[1]
    pad = -frames % stride
    weights = nn.functional.pad(mask.to(features.dtype), (0, pad))  # (batch, padded frames)
    summed = nn.functional.pad(features * mask[..., None].to(features.dtype), (0, 0, 0, pad))
    summed = summed.unflatten(1, (-1, stride)).sum(2)  # (batch, pooled frames, channels)
    counts = weights.unflatten(1, (-1, stride)).sum(2)  # (batch, pooled frames)
    return summed / counts.clamp_min(1.0)[..., None], (counts > 0).long()


class GatedCrossAttention(nn.Module):
    r"""``hidden (batch, tokens, dim)`` reads ``memory (batch, frames, dim)``:
    ``hidden + alpha * sigmoid(gate(hidden)) * attention(hidden, memory)``."""

    def __init__(self, dim: int, num_heads: int, alpha: float):
        super().__init__()
        self.alpha = alpha
        self.norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.gate = nn.Linear(dim, dim)

    def forward(self, hidden, memory, memory_padding):
        query = self.norm(hidden)
        read, _ = self.attention(query, memory, memory, key_padding_mask=memory_padding, need_weights=False)
        return hidden + self.alpha * torch.sigmoid(self.gate(query)) * read


class IntermediateGuidanceHead(GuidanceHead):
    r"""
    Args:
        language_model: a HF model with an LM head (``labels=`` gives the next-token loss), frozen except the
            parameters it was loaded without.
        feature_channels: channels of the backbone's ``extractor_features``.
        num_heads: heads of each cross-attention (must divide the LLM width).
        alpha: residual scale.
        lora_rank: LoRA rank on the LLM's attention projections (0: none).
        memory_stride: the features are averaged over this many frames before projection (the encoder's 400
            frames/s of ``usev-tiny`` become 100/s with 4), which divides the cost of every layer's key/value
            projection by it.
    """

    name = "intermediate"
    frozen_modules = ("language_model",)

    def __init__(
        self,
        language_model: nn.Module,
        feature_channels: int,
        num_heads: int = 4,
        alpha: float = 0.1,
        lora_rank: int = 0,
        memory_stride: int = 1,
    ):
        super().__init__()
        self.memory_stride = memory_stride
        width = language_model.config.hidden_size
        if width % num_heads:
            raise ValueError(f"--intermediate_num_heads ({num_heads}) must divide the LLM width ({width})")
        if lora_rank:
            from peft import LoraConfig, inject_adapter_in_model

            trainable = {name for name, parameter in language_model.named_parameters() if parameter.requires_grad}
            language_model = inject_adapter_in_model(
                LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, target_modules=LORA_TARGETS), language_model
            )
            freeze(
                language_model, trainable | {name for name, _ in language_model.named_parameters() if "lora_" in name}
            )
        self.language_model = language_model
        self.feature_projection = nn.Linear(feature_channels, width)
        layers = find_decoder_layers(language_model)
        self.cross_attentions = nn.ModuleList(GatedCrossAttention(width, num_heads, alpha) for _ in layers)
        self._memory = None
        for layer, cross_attention in zip(layers, self.cross_attentions):
            layer.register_forward_hook(self._hook(cross_attention))

    def _hook(self, cross_attention):
        def read_features(module, args, output):
            if self._memory is None:
                return output  # the LLM used on its own
            hidden = output[0] if isinstance(output, tuple) else output
            hidden = cross_attention(hidden, *self._memory)
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        return read_features

    def forward(self, output, batch: dict) -> torch.Tensor:
        input_ids, attention_mask = batch["transcript_input_ids"], batch["transcript_attention_mask"]
        features, frame_mask = output.extractor_features, output.extractor_attention_mask  # (b, t, c), (b, t)
        if self.memory_stride > 1:
            features, frame_mask = pool_frames(features, frame_mask, self.memory_stride)
        memory = self.feature_projection(features)  # (batch, frames, width)
        self._memory = (memory, frame_mask == 0)
        try:
            labels = input_ids.masked_fill(attention_mask == 0, -100)
            return self.language_model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        finally:
            self._memory = None
