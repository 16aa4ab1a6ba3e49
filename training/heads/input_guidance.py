"""Input guidance (ELEGANCE, III.A.3): the LLM's token embeddings of the transcript are the backbone's linguistic
prior, fused by its gated cross-attention. Text dropout: an example gets its real embeddings with probability ``p``
(drawn per example by the dataset, see ``training.data``), zeros otherwise; zeros always at evaluation and
inference. The fusion module is part of the backbone, so this head has no parameters and no loss."""

from __future__ import annotations

import torch

from .base import GuidanceHead


class InputGuidanceHead(GuidanceHead):
    name = "input"

    def backbone_inputs(self, batch: dict) -> dict:
        embeds = batch["transcript_embeds"]  # (batch, tokens, hidden)
        keep = batch["prior_keep"] if self.training else torch.zeros_like(batch["prior_keep"])  # (batch,)
        return {
            "prior_embeds": embeds * keep[:, None, None].to(embeds.dtype),
            "prior_attention_mask": batch["transcript_embeds_mask"],
        }

    def forward(self, output, batch: dict):
        return None
