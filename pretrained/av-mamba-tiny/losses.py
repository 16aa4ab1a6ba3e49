"""Training objectives of the extraction backbones, on ``(batch, samples)`` waveforms with a padding mask.

Written once here and used by the models, the trainer and the evaluation.
"""

from __future__ import annotations

import torch

EPS = 1e-8


def scale_invariant_sdr(
    estimate: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, eps: float = EPS
) -> torch.Tensor:
    r"""SI-SDR in dB of each row, ``(batch, samples) -> (batch,)``, over the samples where ``mask`` is 1.

    Both signals are made zero-mean over the real samples first (Le Roux et al., 2019). Computed in float32, or in
    float64 when an input is float64. ``eps`` keeps the training loss finite; the evaluation metric passes 0.
    """
    dtype = torch.promote_types(torch.promote_types(estimate.dtype, target.dtype), torch.float32)
    estimate, target = estimate.to(dtype), target.to(dtype)
    mask = torch.ones_like(target) if mask is None else mask.to(target.dtype)
    count = mask.sum(-1, keepdim=True).clamp_min(1.0)
    estimate = (estimate - (estimate * mask).sum(-1, keepdim=True) / count) * mask
    target = (target - (target * mask).sum(-1, keepdim=True) / count) * mask
    scale = (estimate * target).sum(-1, keepdim=True) / (target.pow(2).sum(-1, keepdim=True) + eps)
    projection = scale * target
    noise = estimate - projection
    return 10 * torch.log10(projection.pow(2).sum(-1) / (noise.pow(2).sum(-1) + eps) + eps)


def negative_si_sdr_loss(estimate, target, mask=None) -> torch.Tensor:
    """Mean negative SI-SDR over the batch (dB)."""
    return -scale_invariant_sdr(estimate, target, mask).mean()


def target_activity(
    target: torch.Tensor, mask: torch.Tensor | None, *, frame_length: int, threshold_db: float
) -> torch.Tensor:
    r"""``(batch, samples)`` 1 where the target speaks: the samples of frames of ``frame_length`` whose energy is
    within ``threshold_db`` of the loudest frame of the row (a silent row has no active sample)."""
    samples = target.shape[-1]
    padded = -(-samples // frame_length) * frame_length
    power = torch.nn.functional.pad(target.float(), (0, padded - samples)).pow(2)
    frame_energy = power.view(target.shape[0], -1, frame_length).mean(-1)
    loudest = frame_energy.amax(-1, keepdim=True)
    active = (frame_energy > loudest * 10 ** (threshold_db / 10)) & (loudest > EPS)
    active = active.repeat_interleave(frame_length, dim=-1)[:, :samples].float()
    return active if mask is None else active * mask.float()


def activity_aware_loss(
    estimate: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    frame_length: int,
    threshold_db: float = -40.0,
    silence_weight: float = 0.005,
) -> torch.Tensor:
    r"""USEV's loss for sparsely overlapped speech, averaged over the batch.

    ``-SDR`` over the samples where the target speaks plus ``silence_weight * 10 log10(energy)`` of the estimate
    where it is silent, so a model learns to output silence when the target does not talk. A row where the target
    never speaks contributes only the energy term; a row where it always speaks only the SDR term.
    """
    estimate, target = estimate.float(), target.float()
    real = torch.ones_like(target) if mask is None else mask.float()
    active = target_activity(target, real, frame_length=frame_length, threshold_db=threshold_db)
    silent = real - active
    signal = (target * active).pow(2).sum(-1)
    error = ((target - estimate) * active).pow(2).sum(-1)
    sdr = 10 * torch.log10(signal / (error + EPS) + EPS)
    has_speech = active.sum(-1) > 0
    silence_energy = 10 * torch.log10((estimate * silent).pow(2).sum(-1) + EPS)
    has_silence = silent.sum(-1) > 0
    loss = torch.where(has_speech, -sdr, 0.0) + torch.where(has_silence, silence_weight * silence_energy, 0.0)
    return loss.mean()
