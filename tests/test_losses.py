"""The training objectives: SI-SDR and the activity-aware loss."""

from __future__ import annotations

import torch

from modeling_elegance import activity_aware_loss, scale_invariant_sdr


def test_activity_aware_loss_scores_speech_with_sdr_and_silence_with_energy():
    target = torch.zeros(2, 1600)
    target[0] = torch.randn(1600)  # always speaking
    estimate = target + 0.1 * torch.randn(2, 1600)
    # row 0: -SDR only; row 1 (silent target): 0.005 * 10 log10(energy) only
    sdr = 10 * torch.log10(target[0].pow(2).sum() / (target[0] - estimate[0]).pow(2).sum())
    energy = 10 * torch.log10(estimate[1].pow(2).sum())
    expected = (-sdr + 0.005 * energy) / 2
    got = activity_aware_loss(estimate, target, frame_length=320)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)


def test_activity_aware_loss_penalises_output_where_the_target_is_silent():
    target = torch.zeros(1, 3200)
    target[:, :1600] = torch.randn(1, 1600)
    quiet, loud = target.clone(), target.clone()
    quiet[:, 1600:] = 1e-3 * torch.randn(1, 1600)
    loud[:, 1600:] = torch.randn(1, 1600)
    quiet_loss = activity_aware_loss(quiet, target, frame_length=320)
    loud_loss = activity_aware_loss(loud, target, frame_length=320)
    # identical where the target speaks: the difference is the energy penalty alone, 60 dB x 0.005
    torch.testing.assert_close(loud_loss - quiet_loss, torch.tensor(0.3), atol=0.02, rtol=0)


def test_si_sdr_is_scale_invariant_and_matches_a_known_ratio():
    target = torch.randn(1, 16000)
    noise = torch.randn(1, 16000)
    noise = (
        noise
        - noise.mean()
        - (noise * (target - target.mean())).sum() / (target - target.mean()).pow(2).sum() * (target - target.mean())
    )
    noise = noise * (target - target.mean()).norm() / noise.norm() / 10  # 20 dB below the target, orthogonal
    estimate = target + noise
    torch.testing.assert_close(scale_invariant_sdr(estimate, target), torch.tensor([20.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(scale_invariant_sdr(3 * estimate, target), scale_invariant_sdr(estimate, target))
