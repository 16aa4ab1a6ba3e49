"""Whisper's encoder as the frozen PSLM of output guidance: a real recogniser's speech representation, offline (the
Whisper tiny.en of `elegance-whisper-offline`) or any Whisper folder or Hub name.

Two things stand between Whisper and a training loss, and this module handles both:
- Whisper's features (`WhisperFeatureExtractor`) are computed in numpy, so no gradient reaches the waveform. Here
  the same log-mel spectrogram is computed in torch (the same STFT, mel filters, log floor and scaling), so the
  gradient of output guidance flows through it into the extractor.
- `WhisperEncoder.forward` accepts only 30-s inputs (3,000 feature frames). Padding a 3-s training clip to 30 s
  would cost ten times the compute, so the encoder's own layers are run here on the clip's frames with the first
  positional embeddings, the way Whisper's encoder runs on the first seconds of its window.
Equivalence with transformers on a full 30-s window is tested in tests/test_whisper_speech_encoder.py.
"""

from __future__ import annotations

import torch
from torch import nn

from .language_model import freeze

HOP_LENGTH = 160  # Whisper's feature frames: 10 ms at 16 kHz
N_FFT = 400
LOG_FLOOR_DB = 8.0  # Whisper clamps the log-mel spectrogram to within 8 (log10 units) of its maximum
# the level every waveform is set to before the features: an extractor trained by SI-SDR leaves its output's scale
# free, while Whisper's log-mel depends on it, so without this the guidance loss could pull the scale anywhere
TARGET_RMS = 0.05


def power_spectrum(stft: torch.Tensor) -> torch.Tensor:
    """``|z|^2`` of complex STFT bins, as ``re^2 + im^2``.

    ``stft.abs() ** 2`` has the same value, but the gradient of ``abs`` is ``z / |z|``, NaN where ``|z|`` is
    subnormal (near-silence): that turned the weights of an output-guided run to NaN at step ~161 (autograd's
    anomaly mode named ``AbsBackward0``).
    """
    return torch.view_as_real(stft).pow(2).sum(-1)


class WhisperSpeechEncoder(nn.Module):
    r"""``(batch, samples)`` 16 kHz waveform -> ``(batch, frames, d_model)`` hidden states at 50 frames/s and
    ``(batch, frames)`` mask. Differentiable in its input; its weights are frozen. At most 30 s. Each waveform is
    set to one level (:data:`TARGET_RMS`) first, so its scale does not matter."""

    def __init__(self, encoder: nn.Module, mel_filters: torch.Tensor):
        super().__init__()
        self.encoder = encoder
        self.register_buffer("mel_filters", mel_filters, persistent=False)  # (n_fft // 2 + 1, n_mels)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    @property
    def hidden_size(self) -> int:
        return self.encoder.config.d_model

    @property
    def max_samples(self) -> int:
        # the encoder's positions are at half the feature rate
        return self.encoder.config.max_source_positions * 2 * HOP_LENGTH

    @classmethod
    def from_pretrained(cls, name_or_path: str) -> WhisperSpeechEncoder:
        from transformers import WhisperFeatureExtractor, WhisperModel

        model = WhisperModel.from_pretrained(name_or_path, dtype=torch.float32)
        mel_filters = WhisperFeatureExtractor(feature_size=model.config.num_mel_bins).mel_filters
        return cls(freeze(model.encoder).eval(), torch.tensor(mel_filters, dtype=torch.float32))

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, n_mels, samples // 160)``, as `WhisperFeatureExtractor` computes it
        on a zero-padded window (hence the zeros after the clip, which its STFT sees instead of a reflection)."""
        padded = nn.functional.pad(waveform, (0, N_FFT // 2))
        stft = torch.stft(padded, N_FFT, HOP_LENGTH, window=self.window, return_complex=True)
        frames = waveform.shape[-1] // HOP_LENGTH
        power = power_spectrum(stft[..., :frames])  # (batch, n_fft // 2 + 1, frames)
        log_spec = torch.clamp(self.mel_filters.T @ power, min=1e-10).log10()  # (batch, n_mels, frames)
        peak = log_spec.amax(dim=(1, 2), keepdim=True)
        log_spec = torch.maximum(log_spec, peak - LOG_FLOOR_DB)
        return (log_spec + 4.0) / 4.0

    def forward(self, waveform: torch.Tensor, sample_mask: torch.Tensor | None = None):
        if waveform.shape[-1] > self.max_samples:
            raise ValueError(
                f"Whisper's encoder takes at most {self.max_samples / 16000:.0f} s, got "
                f"{waveform.shape[-1] / 16000:.1f} s; train on shorter segments (--segment_seconds)"
            )
        if waveform.shape[-1] < 2 * HOP_LENGTH:
            raise ValueError(f"Whisper's encoder needs at least {2 * HOP_LENGTH} samples, got {waveform.shape[-1]}")
        weights = torch.ones_like(waveform) if sample_mask is None else sample_mask.to(waveform.dtype)
        waveform = waveform * weights  # what lies past each clip is silence to Whisper
        power = waveform.pow(2).sum(-1, keepdim=True) / weights.sum(-1, keepdim=True).clamp_min(1.0)
        waveform = waveform * (TARGET_RMS / torch.sqrt(power + 1e-10))
        features = self.log_mel(waveform)
        encoder = self.encoder
        hidden = nn.functional.gelu(encoder.conv1(features))
        hidden = nn.functional.gelu(encoder.conv2(hidden)).transpose(1, 2)  # (batch, frames, d_model)
        hidden = hidden + encoder.embed_positions.weight[: hidden.shape[1]]
        for layer in encoder.layers:
            hidden = layer(hidden, None)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        hidden = encoder.layer_norm(hidden)
        if sample_mask is None:
            return hidden, None
        feature_frames = sample_mask.long().sum(-1) // HOP_LENGTH
        lengths = (feature_frames + 1) // 2  # conv2 has stride 2 and padding 1
        frame_mask = torch.arange(hidden.shape[1], device=hidden.device) < lengths[:, None]
        return hidden, frame_mask
