"""The learned waveform encoder and decoder of USEV/Conv-TasNet: a strided 1-D convolution and its overlap-add inverse.

Framing follows the original USEV (github zexupan/USEV): the encoder takes only full windows, so samples after the
last full window get no frame, and the decoder's output is zero-padded back to the input length there.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class WaveformEncoder(nn.Module):
    r"""``(batch, samples) -> (batch, channels, frames)``: Conv1d(1 -> channels, kernel, stride = kernel // 2) + ReLU.

    Only full windows are encoded: ``frames = floor((samples - kernel) / stride) + 1``.
    """

    def __init__(self, channels: int, *, kernel_size: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size // 2
        self.conv = nn.Conv1d(1, channels, kernel_size, stride=self.stride, bias=False)

    # the separator sees the encoded mixture itself, and a mask scales it channel by channel (ReLU: nonnegative)
    mask_nonnegative = True

    @property
    def feature_channels(self) -> int:
        return self.conv.out_channels

    @property
    def mask_channels(self) -> int:
        return self.conv.out_channels

    def num_frames(self, samples: torch.Tensor | int):
        """Frames produced for ``samples >= kernel_size`` input samples (ints or integer tensors)."""
        excess = samples - self.kernel_size
        if isinstance(excess, torch.Tensor):
            return torch.div(excess.clamp_min(0), self.stride, rounding_mode="floor") + 1
        return max(excess, 0) // self.stride + 1

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(waveform.unsqueeze(1)))

    @staticmethod
    def features(encoded: torch.Tensor) -> torch.Tensor:
        return encoded

    @staticmethod
    def apply_mask(encoded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return encoded * mask

    @staticmethod
    def ideal_ratio_mask(encoded_target: torch.Tensor, encoded_rest: torch.Tensor) -> torch.Tensor:
        """``T / (T + R)`` on the nonnegative encodings, clamped to [0, 1]."""
        return (encoded_target / (encoded_target + encoded_rest).clamp_min(1e-8)).clamp(0, 1)


class WaveformDecoder(nn.Module):
    r"""``(batch, channels, frames) -> (batch, samples)``: a linear map of each frame to ``kernel`` samples, then
    overlap-add with hop ``kernel // 2``; zeros are appended up to ``samples`` (the samples no frame covers)."""

    def __init__(self, channels: int, *, kernel_size: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size // 2
        self.basis = nn.Linear(channels, kernel_size, bias=False)

    def forward(self, frames: torch.Tensor, samples: int) -> torch.Tensor:
        segments = self.basis(frames.transpose(1, 2)).transpose(1, 2)  # (batch, kernel, frames)
        length = (frames.shape[-1] - 1) * self.stride + self.kernel_size
        waveform = F.fold(segments, output_size=(1, length), kernel_size=(1, self.kernel_size), stride=(1, self.stride))
        return F.pad(waveform[:, 0, 0, :samples], (0, max(samples - length, 0)))
