"""Whisper's encoder as the PSLM of output guidance: the same features and hidden states as transformers on a
30-s window, a gradient into the waveform, masks by length, and clear errors (the
default of output guidance is tested in test_guidance.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor, WhisperModel

from training.speech_encoder import SpeechEncoder
from training.whisper_speech_encoder import WhisperSpeechEncoder, power_spectrum


@pytest.fixture(scope="module")
def encoder(random_whisper) -> WhisperSpeechEncoder:
    loaded = SpeechEncoder.from_pretrained(random_whisper)
    assert isinstance(loaded, WhisperSpeechEncoder)
    return loaded


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    samples = int(seconds * 16000)
    envelope = 0.5 + 0.5 * np.sin(np.linspace(0, 20, samples))  # loud and quiet stretches, like speech
    return (0.1 * envelope * generator.standard_normal(samples)).astype(np.float32)


def test_log_mel_is_whispers_feature_extractor_in_torch(encoder):
    clip = speech_like(2.37)
    expected = WhisperFeatureExtractor(feature_size=80)(clip, sampling_rate=16000, return_tensors="np").input_features
    frames = len(clip) // 160
    ours = encoder.log_mel(torch.from_numpy(clip)[None]).numpy()
    assert ours.shape == (1, 80, frames)
    np.testing.assert_allclose(ours[0], expected[0, :, :frames], atol=2e-4)


def test_hidden_states_equal_transformers_on_a_full_window(encoder, random_whisper):
    from training.whisper_speech_encoder import TARGET_RMS

    clip = speech_like(30.0, seed=1)
    clip = (clip * (TARGET_RMS / np.sqrt(np.mean(clip.astype(np.float64) ** 2)))).astype(np.float32)  # its level
    features = WhisperFeatureExtractor(feature_size=80)(clip, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        expected = WhisperModel.from_pretrained(random_whisper).encoder(features).last_hidden_state
        ours, mask = encoder(torch.from_numpy(clip)[None])
    assert mask is None and ours.shape == expected.shape == (1, 1500, 16)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)


def test_the_gradient_reaches_the_waveform_and_not_the_weights(encoder):
    waveform = torch.from_numpy(np.stack([speech_like(1.0, 2), speech_like(1.0, 3)])).requires_grad_()
    sample_mask = torch.ones_like(waveform, dtype=torch.bool)
    sample_mask[1, 9600:] = False  # the second clip is 0.6 s long
    hidden, frame_mask = encoder(waveform, sample_mask)
    assert hidden.shape == (2, 50, 16)
    assert frame_mask.sum(-1).tolist() == [50, 30]
    hidden[frame_mask].pow(2).sum().backward()
    assert waveform.grad[0].abs().sum() > 0 and waveform.grad[1, :9600].abs().sum() > 0
    assert waveform.grad[1, 9600:].abs().sum() == 0  # what lies past a clip is silence, never its content
    assert not any(parameter.requires_grad for parameter in encoder.parameters())


def test_the_power_spectrum_has_a_finite_gradient_at_near_silence():
    """Subnormal bins (near-silence) give ``abs()`` a NaN gradient; the power spectrum of the PSLM must not."""
    bins = torch.tensor([1e-40 + 1e-40j, 0j, 3e-3 + 4e-3j], dtype=torch.complex64, requires_grad=True)
    assert torch.isnan(torch.autograd.grad(bins.abs().pow(2).sum(), bins)[0]).any()  # what went wrong
    power = power_spectrum(bins)
    torch.testing.assert_close(power.detach(), bins.detach().abs().pow(2))
    (gradient,) = torch.autograd.grad(power.sum(), bins)
    assert torch.isfinite(torch.view_as_real(gradient)).all()
    torch.testing.assert_close(gradient[2], 2 * bins.detach()[2])


def test_the_level_of_the_waveform_does_not_matter(encoder):
    """An SI-SDR-trained extractor's output has no fixed scale; the PSLM must not let the loss pull on it."""
    waveform = torch.from_numpy(np.stack([speech_like(1.0, 4), speech_like(1.0, 5)]))
    with torch.no_grad():
        reference, _ = encoder(waveform)
        for gain in (1e-3, 30.0):
            torch.testing.assert_close(encoder(waveform * gain)[0], reference, atol=1e-4, rtol=1e-4)


def test_clear_errors(encoder):
    with pytest.raises(ValueError, match=r"^Whisper's encoder takes at most 30 s, got 30\.5 s; train on shorter"):
        encoder(torch.zeros(1, 488000))
    with pytest.raises(ValueError, match=r"^Whisper's encoder needs at least 320 samples, got 100$"):
        encoder(torch.zeros(1, 100))


def test_a_diverged_run_stops_with_a_clear_error(tmp_path):
    from torch import nn
    from transformers import TrainingArguments

    from training.guided_model import GuidedOutput
    from training.trainer import GuidanceTrainer

    class Diverged(nn.Module):
        def forward(self, **batch):
            nan = torch.tensor(float("nan"))
            return GuidedOutput(loss=nan, components={"extraction": nan, "output": torch.tensor(1.0)})

    trainer = GuidanceTrainer(model=Diverged(), args=TrainingArguments(str(tmp_path), report_to="none", use_cpu=True))
    with pytest.raises(FloatingPointError, match=r"^the training loss is nan at step 0 \(extraction nan, output 1\): "):
        trainer.compute_loss(trainer.model.train(), {})
