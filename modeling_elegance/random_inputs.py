"""Random model inputs of the right shapes, for tests, benchmarks and for checking that two copies of a model agree.

What ``PreTrainedModel.dummy_inputs`` is in transformers, sized by the caller.
"""

from __future__ import annotations

import torch

from .configuration_backbones import DualPathConfig


def random_inputs(
    config: DualPathConfig, *, batch: int = 1, seconds: float = 1.0, seed: int = 0, amplitude: float = 1.0
) -> dict:
    """``input_values`` ``(batch, samples)`` and, for models with lips, ``lip_frames`` ``(batch, frames, size, size)``
    or ``lip_embeds`` ``(batch, frames, lip_embedding_dim)``, all Gaussian and fixed by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    samples, frames = round(seconds * config.sampling_rate), round(seconds * config.fps)
    inputs = {"input_values": amplitude * torch.randn(batch, samples, generator=generator)}
    if config.lip_input == "frames":
        size = config.lip_roi_size
        inputs["lip_frames"] = torch.randn(batch, frames, size, size, generator=generator)
    elif config.lip_input == "embeddings":
        inputs["lip_embeds"] = torch.randn(batch, frames, config.lip_embedding_dim, generator=generator)
    return inputs
