"""The dual-path extractor shared by USEV and AV-Mamba (Luo et al., 2020; Pan et al., USEV 2022).

Frames are cut into half-overlapping chunks; each dual-path block runs one sequence model within every chunk
(intra) and one across chunks at every position (inter). USEV plugs a BLSTM into both, AV-Mamba a bidirectional
Mamba: that choice, made by :func:`~.sequence_models.build_sequence_model`, is the only difference between them.

Axis legend: ``b`` batch, ``c`` channels, ``k`` position within a chunk, ``s`` chunk index, ``t`` frames.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F
from transformers.modeling_layers import GradientCheckpointingLayer

from .normalization import GlobalLayerNorm, apply_mask
from .prior_fusion import GatedCrossAttentionFusion
from .sequence_models import build_sequence_model


def _chunk_padding(frames, chunk_size: int):
    # the original DPRNN/USEV rule: the gap lies in 1..chunk_size, so a whole chunk of zeros is added when
    # frames + hop is already a multiple of the chunk size; kept for weight compatibility with USEV checkpoints
    hop = chunk_size // 2
    return hop, chunk_size - (hop + frames % chunk_size) % chunk_size


def num_chunks(frames, chunk_size: int):
    """Chunks :func:`split_into_chunks` makes of ``frames`` frames (ints or integer tensors)."""
    hop, gap = _chunk_padding(frames, chunk_size)
    return (frames + gap + 2 * hop - chunk_size) // hop + 1


def split_into_chunks(x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """``(b, c, t) -> (b, c, k, s)``: half-overlapping chunks; the frames are zero-padded by a gap of 1 to
    ``chunk_size`` frames to fill the last chunk, then by half a chunk at each end."""
    hop, gap = _chunk_padding(x.shape[-1], chunk_size)
    chunks = F.pad(x, (hop, gap + hop)).unfold(-1, chunk_size, hop)  # (b, c, s, k)
    return chunks.transpose(2, 3)


def overlap_add(chunks: torch.Tensor, frames: int) -> torch.Tensor:
    """Inverse of :func:`split_into_chunks`: ``(b, c, k, s) -> (b, c, t)``, overlapping halves summed."""
    batch, channels, chunk_size, count = chunks.shape
    hop = chunk_size // 2
    length = (count - 1) * hop + chunk_size
    folded = F.fold(
        rearrange(chunks, "b c k s -> b (c k) s"), output_size=(1, length), kernel_size=(1, chunk_size), stride=(1, hop)
    )
    return folded[:, :, 0, hop : hop + frames]


class DualPathBlock(GradientCheckpointingLayer):
    r"""Intra-chunk then inter-chunk modelling, each followed by a linear map, gLN and a residual connection.

    Args:
        channels: width ``c`` of the chunked features.
        config: supplies the sequence model (``sequence_model`` and its sizes).

    Shapes: ``x`` ``(b, c, k, s)``; ``chunk_mask`` ``(b, 1, 1, s)``, 1 on the chunks each row has when alone;
    ``chunk_lengths`` ``(b,)``, their number. Both are None when no row is padded.
    """

    def __init__(self, channels: int, config):
        super().__init__()
        self.intra_model = build_sequence_model(config, channels)
        self.intra_projection = nn.Linear(self.intra_model.output_size, channels)
        self.intra_norm = GlobalLayerNorm(channels)
        self.inter_model = build_sequence_model(config, channels)
        self.inter_projection = nn.Linear(self.inter_model.output_size, channels)
        self.inter_norm = GlobalLayerNorm(channels)

    def forward(
        self, x: torch.Tensor, chunk_mask: torch.Tensor | None, chunk_lengths: torch.Tensor | None
    ) -> torch.Tensor:
        batch, _, chunk_size, _ = x.shape
        intra = self.intra_projection(self.intra_model(rearrange(x, "b c k s -> (b s) k c").contiguous()))
        x = x + self.intra_norm(rearrange(intra, "(b s) k c -> b c k s", b=batch), chunk_mask)
        inter_lengths = None if chunk_lengths is None else chunk_lengths.repeat_interleave(chunk_size)
        inter = self.inter_projection(
            self.inter_model(rearrange(x, "b c k s -> (b k) s c").contiguous(), inter_lengths)
        )
        return x + self.inter_norm(rearrange(inter, "(b k) s c -> b c k s", b=batch), chunk_mask)


class DualPathExtractor(nn.Module):
    r"""USEV's separator: encoded mixture (+ cue, + prior) -> mask over the encoder channels and extractor features.

    gLN -> 1x1 bottleneck -> [gated cross-attention with a linguistic prior] -> [concatenate the cue, 1x1 back to
    the bottleneck] -> dual-path blocks -> PReLU -> 1x1 to the encoder channels -> ReLU mask.

    Args:
        config: a dual-path config (``bottleneck_channels``, ``num_blocks``, ``chunk_size``, the sequence model's
            sizes and ``prior_embedding_dim``).
        cue_channels: width of the cue fused before the blocks (the visual cue); 0 for audio-only extraction.
        input_channels: width of the encoder features it reads; mask_channels: width of the mask it writes (both
            ``encoder_channels`` for USEV's learned encoder).
        mask_nonnegative: ReLU on the mask (USEV's); False leaves it linear (a complex mask).
    """

    def __init__(
        self, config, *, cue_channels: int, input_channels: int, mask_channels: int, mask_nonnegative: bool = True
    ):
        super().__init__()
        bottleneck = config.bottleneck_channels
        self.chunk_size = config.chunk_size
        self.mask_nonnegative = mask_nonnegative
        self.norm = GlobalLayerNorm(input_channels)
        self.bottleneck = nn.Conv1d(input_channels, bottleneck, 1, bias=False)
        self.prior_fusion = None
        if config.prior_embedding_dim is not None:
            self.prior_fusion = GatedCrossAttentionFusion(
                bottleneck, prior_dim=config.prior_embedding_dim, num_heads=config.prior_num_heads
            )
        self.cue_fusion = nn.Conv1d(bottleneck + cue_channels, bottleneck, 1, bias=False) if cue_channels else None
        self.blocks = nn.ModuleList(DualPathBlock(bottleneck, config) for _ in range(config.num_blocks))
        self.mask_activation = nn.PReLU()
        self.mask_projection = nn.Conv1d(bottleneck, mask_channels, 1, bias=False)

    def forward(
        self,
        mixture: torch.Tensor,
        frame_lengths: torch.Tensor | None,
        cue: torch.Tensor | None = None,
        prior: torch.Tensor | None = None,
        prior_attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""
        Args:
            mixture: ``(b, input_channels, t)`` the encoder's features of the mixture.
            frame_lengths: ``(b,)`` real frames of each row, or None when no row is padded.
            cue: ``(b, cue_channels, t)`` cue aligned to the frames, or None for audio-only extraction.
            prior: ``(b, tokens, prior_embedding_dim)`` linguistic prior (fusion enabled only).
            prior_attention_mask: ``(b, tokens)``, 1 on real prior tokens.

        Returns:
            ``mask`` ``(b, mask_channels, t)`` and ``features`` ``(b, t, bottleneck_channels)``, the output of
            the dual-path blocks before the mask head.
        """
        frames = mixture.shape[-1]
        frame_mask = chunk_mask = chunk_lengths = None
        if frame_lengths is not None:
            frame_mask = (torch.arange(frames, device=mixture.device) < frame_lengths[:, None]).unsqueeze(1)
        x = self.bottleneck(self.norm(mixture, frame_mask))
        if self.prior_fusion is not None:
            x = self.prior_fusion(x.transpose(1, 2), prior, prior_attention_mask).transpose(1, 2)
        if self.cue_fusion is not None:
            x = self.cue_fusion(torch.cat([x, cue], dim=1))
        # padding must be zero before chunking: a row alone sees zeros past its end
        chunks = split_into_chunks(apply_mask(x, frame_mask), self.chunk_size)
        if frame_lengths is not None:
            chunk_lengths = num_chunks(frame_lengths, self.chunk_size)
            chunk_mask = (torch.arange(chunks.shape[-1], device=x.device) < chunk_lengths[:, None])[:, None, None, :]
        for block in self.blocks:
            chunks = block(chunks, chunk_mask, chunk_lengths)
        features = apply_mask(overlap_add(chunks, frames), frame_mask)
        mask = self.mask_projection(self.mask_activation(features))
        if self.mask_nonnegative:
            mask = torch.relu(mask)
        return mask, features.transpose(1, 2)
