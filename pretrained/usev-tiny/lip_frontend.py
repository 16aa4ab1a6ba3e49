"""The lip front-end: grayscale mouth ROI clips to one embedding per frame.

The ClearerVoice / AV-HuBERT visual front-end: a spatio-temporal stem, ``Conv3d(1 -> width, kernel (5, 7, 7),
stride (1, 2, 2))`` + BatchNorm + PReLU + max-pool, then a ResNet-18 trunk applied to every frame and averaged over
space. With ``width=64`` the embedding is the usual 512-d; the model owns and trains it, so no external visual
weights are needed.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


class ResNetBasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18's block), PReLU activations."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.act1 = nn.PReLU(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act2 = nn.PReLU(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(residual + self.shortcut(x))


class LipFrontend(nn.Module):
    r"""``(batch, frames, height, width)`` normalised mouth ROIs -> ``(batch, frames, embedding_dim)``.

    Args:
        width: channels of the stem and of the first ResNet stage; the stages have ``width * (1, 2, 4, 8)``.
        embedding_dim: output size; a linear projection is added when it differs from ``8 * width``.
    """

    def __init__(self, *, width: int = 64, embedding_dim: int = 512):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(1, width, kernel_size=(5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False),
            nn.BatchNorm3d(width),
            nn.PReLU(width),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        stages, channels = [], width
        for stage, multiplier in enumerate((1, 2, 4, 8)):
            out_channels = width * multiplier
            stride = 1 if stage == 0 else 2
            stages += [
                ResNetBasicBlock(channels, out_channels, stride=stride),
                ResNetBasicBlock(out_channels, out_channels, stride=1),
            ]
            channels = out_channels
        self.trunk = nn.Sequential(*stages)
        self.projection = nn.Identity() if channels == embedding_dim else nn.Linear(channels, embedding_dim)

    # frames embedded at once outside training: the stem's activations of a long clip would take gigabytes
    inference_block_frames = 64

    def forward(self, lip_frames: torch.Tensor) -> torch.Tensor:
        frames, block = lip_frames.shape[1], self.inference_block_frames
        if self.training or frames <= block:
            return self._embed(lip_frames)
        # only the stem looks across frames (2 on each side): blocks with that halo give the same embeddings
        halo, pieces = 2, []
        for start in range(0, frames, block):
            low, high = max(0, start - halo), min(frames, start + block + halo)
            embedded = self._embed(lip_frames[:, low:high])
            pieces.append(embedded[:, start - low : start - low + min(block, frames - start)])
        return torch.cat(pieces, dim=1)

    def _embed(self, lip_frames: torch.Tensor) -> torch.Tensor:
        batch = lip_frames.shape[0]
        features = self.stem(lip_frames.unsqueeze(1))  # (batch, width, frames, height / 4, width / 4)
        features = self.trunk(rearrange(features, "b c t h w -> (b t) c h w"))
        embeddings = features.mean(dim=(-2, -1))  # (batch * frames, channels)
        return self.projection(rearrange(embeddings, "(b t) c -> b t c", b=batch))
