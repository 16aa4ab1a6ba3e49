"""The sequence models a dual-path block runs along and across chunks: a BLSTM (USEV) or a bidirectional Mamba
(AV-Mamba). Both read ``(batch, frames, channels)`` and return ``(batch, frames, output_size)``; ``lengths``
marks how many leading frames of each row are real, so padding never reaches a real frame.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from transformers import initialization as init

from .selective_scan import selective_scan


class BidirectionalLSTM(nn.Module):
    r"""One bidirectional LSTM layer; ``output_size = 2 * hidden_size``."""

    def __init__(self, input_size: int, *, hidden_size: int):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_size = 2 * hidden_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        # x: (batch, frames, channels) -> (batch, frames, 2 * hidden)
        if x.device.type == "cpu":
            # oneDNN has no bf16 LSTM on CPUs without AVX512-BF16: run it in float32 under autocast
            with torch.autocast("cpu", enabled=False):
                return self._run(x.float(), lengths)
        return self._run(x, lengths)

    def _run(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        if lengths is None or bool((lengths == x.shape[1]).all()):
            return self.lstm(x)[0]
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, _ = self.lstm(packed)
        return nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=x.shape[1])[0]


class MambaMixer(nn.Module):
    r"""A Mamba (S6) mixer, ``(batch, frames, channels) -> (batch, frames, channels)``, causal in time.

    Args:
        channels: input and output width.
        state_size: states per inner channel (``d_state``).
        expand: inner width is ``expand * channels``.
        conv_kernel: width of the causal depthwise convolution.
        time_step_rank: rank of the step-size projection (``ceil(channels / 16)`` when None).
    """

    def __init__(self, channels: int, *, state_size: int, expand: int, conv_kernel: int, time_step_rank: int | None):
        super().__init__()
        inner = expand * channels
        self.time_step_rank = time_step_rank or math.ceil(channels / 16)
        self.state_size = state_size
        self.in_proj = nn.Linear(channels, 2 * inner, bias=False)
        self.conv1d = nn.Conv1d(inner, inner, conv_kernel, groups=inner, padding=conv_kernel - 1)
        self.x_proj = nn.Linear(inner, self.time_step_rank + 2 * state_size, bias=False)
        self.dt_proj = nn.Linear(self.time_step_rank, inner)
        self.A_log = nn.Parameter(torch.empty(inner, state_size))
        self.D = nn.Parameter(torch.empty(inner))
        self.out_proj = nn.Linear(inner, channels, bias=False)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self, time_step_min: float = 1e-3, time_step_max: float = 0.1):
        """Mamba's initialisation: S4D-real ``A``, unit ``D``, step sizes log-uniform in [min, max]."""
        inner = self.A_log.shape[0]
        init.copy_(self.A_log, torch.log(torch.arange(1, self.state_size + 1, dtype=torch.float32)).repeat(inner, 1))
        init.ones_(self.D)
        std = self.time_step_rank**-0.5
        init.uniform_(self.dt_proj.weight, -std, std)
        time_step = torch.exp(
            torch.rand(inner) * (math.log(time_step_max) - math.log(time_step_min)) + math.log(time_step_min)
        )
        init.copy_(self.dt_proj.bias, time_step + torch.log(-torch.expm1(-time_step)))  # inverse softplus

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[1]
        hidden, gate = self.in_proj(x).chunk(2, dim=-1)
        hidden = F.silu(self.conv1d(hidden.transpose(1, 2))[..., :frames].transpose(1, 2))
        time_step, B, C = self.x_proj(hidden).split([self.time_step_rank, self.state_size, self.state_size], dim=-1)
        delta = F.softplus(self.dt_proj(time_step))
        y = selective_scan(hidden, delta, -torch.exp(self.A_log.float()), B, C, self.D)
        return self.out_proj(y * F.silu(gate))


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reverses the first ``lengths[i]`` frames of each row of ``x (batch, frames, channels)``; padding stays put."""
    if lengths is None:
        return x.flip(1)
    frames = torch.arange(x.shape[1], device=x.device)
    lengths = lengths.to(x.device)[:, None]
    index = torch.where(frames < lengths, lengths - 1 - frames, frames)
    return x.gather(1, index[:, :, None].expand_as(x))


class BidirectionalMamba(nn.Module):
    r"""A forward and a time-reversed Mamba mixer side by side; ``output_size = 2 * input_size``."""

    def __init__(self, input_size: int, *, state_size: int, expand: int, conv_kernel: int, time_step_rank: int | None):
        super().__init__()
        mixer = dict(state_size=state_size, expand=expand, conv_kernel=conv_kernel, time_step_rank=time_step_rank)
        self.forward_mixer = MambaMixer(input_size, **mixer)
        self.backward_mixer = MambaMixer(input_size, **mixer)
        self.output_size = 2 * input_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        # x: (batch, frames, channels) -> (batch, frames, 2 * channels)
        backward = reverse_within_lengths(self.backward_mixer(reverse_within_lengths(x, lengths)), lengths)
        return torch.cat([self.forward_mixer(x), backward], dim=-1)


def build_sequence_model(config, input_size: int) -> nn.Module:
    """The sequence model ``config.sequence_model`` names ("lstm" or "mamba") for inputs of ``input_size``."""
    if config.sequence_model == "lstm":
        return BidirectionalLSTM(input_size, hidden_size=config.hidden_size)
    return BidirectionalMamba(
        input_size,
        state_size=config.mamba_state_size,
        expand=config.mamba_expand,
        conv_kernel=config.mamba_conv_kernel,
        time_step_rank=config.mamba_time_step_rank,
    )
