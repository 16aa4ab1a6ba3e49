"""What every guidance head is: a module that reads the backbone's output (and the batch's guidance inputs) and
returns an auxiliary loss, optionally after adding inputs to the backbone's forward. Heads see the backbone only
through :class:`modeling_elegance.SpeechExtractionOutput`."""

from __future__ import annotations

import torch
from torch import nn


class GuidanceHead(nn.Module):
    """Base class. ``frozen_modules`` names submodules that stay in eval mode and out of checkpoints (the frozen
    LLM or PSLM), apart from any of their parameters left trainable (new LM-head weights, LoRA)."""

    name: str = ""
    frozen_modules: tuple[str, ...] = ()

    def backbone_inputs(self, batch: dict) -> dict:
        """Extra keyword arguments of the backbone's forward (input guidance's prior)."""
        return {}

    def forward(self, output, batch: dict) -> torch.Tensor | None:
        """The auxiliary loss (a scalar), or None for a head without one."""
        raise NotImplementedError


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``(batch, positions, dim)`` -> ``(batch, dim)``, the mean over positions where ``mask (batch, positions)`` is 1."""
    if mask is None:
        return values.mean(1)
    weights = mask[..., None].to(values.dtype)
    return (values * weights).sum(1) / weights.sum(1).clamp_min(1.0)
