"""Output guidance (ELEGANCE, III.A.1): the LLM's pooled embedding of the target transcript and the frozen PSLM's
pooled embedding of the *estimated* speech, each through a trainable adapter into a shared space, pulled together
by MSE. The gradient flows through the frozen PSLM into the extractor."""

from __future__ import annotations

import torch
from torch import nn

from ..speech_encoder import SpeechEncoder
from .base import GuidanceHead, masked_mean


def adapter(in_features: int, out_features: int) -> nn.Module:
    # a parameter-free batch norm at the end: every dimension has unit variance over the batch, so the two adapters
    # cannot satisfy the MSE by mapping everything to one constant (with a LayerNorm instead, the MSE fell to 0.005
    # within 100 steps of the demo and carried no signal)
    return nn.Sequential(
        nn.Linear(in_features, out_features),
        nn.GELU(),
        nn.Linear(out_features, out_features),
        nn.BatchNorm1d(out_features, affine=False),
    )


class OutputGuidanceHead(GuidanceHead):
    r"""
    Args:
        speech_encoder: the frozen PSLM.
        text_dim: width of the LLM's pooled embedding.
        adapter_dim: width of the shared space.
    """

    name = "output"
    frozen_modules = ("speech_encoder",)

    def __init__(self, speech_encoder: SpeechEncoder, text_dim: int, adapter_dim: int):
        super().__init__()
        self.speech_encoder = speech_encoder
        self.speech_adapter = adapter(speech_encoder.hidden_size, adapter_dim)
        self.text_adapter = adapter(text_dim, adapter_dim)

    def forward(self, output, batch: dict) -> torch.Tensor:
        if self.training and output.waveform.shape[0] < 2:
            raise ValueError(
                "output guidance needs at least 2 examples per device and step (its adapters normalise over the "
                "batch); raise --per_device_train_batch_size"
            )
        sample_mask = batch.get("audio_attention_mask")
        hidden, frame_mask = self.speech_encoder(output.waveform, sample_mask)
        speech = self.speech_adapter(masked_mean(hidden, frame_mask))  # (batch, adapter_dim)
        text = self.text_adapter(batch["transcript_pooled"].to(speech.dtype))  # (batch, adapter_dim)
        return nn.functional.mse_loss(speech, text)
