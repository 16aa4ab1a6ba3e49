"""The lip encoder: the lip front-end, optionally followed by a temporal BiLSTM, from mouth ROI clips to one
embedding per video frame.

Shared by the extraction backbones (their visual path) and by the lip-reading model of ``elegance-pretrain-lips``,
with the same parameter names, so a pretrained lip reader's encoder drops into a backbone one to one. Both read
the same config fields: ``lip_frontend_width``, ``lip_embedding_dim`` and ``lip_temporal_layers``.
"""

from __future__ import annotations

import torch
from torch import nn

from .lip_frontend import LipFrontend
from .sequence_models import BidirectionalLSTM


class LipEncoder(nn.Module):
    r"""``(batch, frames, height, width)`` normalised mouth ROIs -> ``(batch, frames, lip_embedding_dim)``.

    Args:
        config: any config with ``lip_frontend_width`` (channels of the front-end's first stage, 64 is ResNet-18),
            ``lip_embedding_dim`` (output size) and ``lip_temporal_layers``: 0 gives the USEV / ClearerVoice
            front-end alone (its embedding is ``lip_embedding_dim``); ``n > 0`` stacks ``n`` BiLSTM layers of
            ``lip_embedding_dim / 2`` units per direction over the front-end's ``8 * lip_frontend_width`` features,
            so each embedding sees the whole clip, as a lip reader's does.
    """

    def __init__(self, config):
        super().__init__()
        temporal_layers = config.lip_temporal_layers
        if temporal_layers and config.lip_embedding_dim % 2:
            raise ValueError(
                f"lip_embedding_dim ({config.lip_embedding_dim}) must be even with lip_temporal_layers="
                f"{temporal_layers}: it is the output of a bidirectional LSTM"
            )
        trunk_channels = 8 * config.lip_frontend_width
        frontend_dim = trunk_channels if temporal_layers else config.lip_embedding_dim
        self.frontend = LipFrontend(width=config.lip_frontend_width, embedding_dim=frontend_dim)
        self.temporal = nn.ModuleList()
        size = frontend_dim
        for _ in range(temporal_layers):
            self.temporal.append(BidirectionalLSTM(size, hidden_size=config.lip_embedding_dim // 2))
            size = config.lip_embedding_dim

    def forward(self, lip_frames: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
        # frame_lengths: (batch,) real frames of each row, None when no row is padded; padded frames are zeroed
        # before the 3-D stem so that they never reach a real frame
        if frame_lengths is not None:
            real = torch.arange(lip_frames.shape[1], device=lip_frames.device) < frame_lengths[:, None]
            lip_frames = lip_frames * real[:, :, None, None].to(lip_frames.dtype)
        embeddings = self.frontend(lip_frames)
        for layer in self.temporal:
            embeddings = layer(embeddings, frame_lengths)
        return embeddings
