"""An STFT encoder and decoder with the learned codec's interface: a complex mask over short-time spectra.

Not in USEV, which learns its filterbank (:mod:`.waveform_codec`). On a CPU budget it is the cheaper front-end: a
512-point window with a hop of 128 samples gives 125 frames a second against the learned tiny encoder's 400, and an
ideal ratio mask on it reaches +12.0 dB SI-SDRi on the embedded corpus, against +9.5 dB at 80/40
(``../shared/NOTES-environment.md``). The mask is complex, so the phase of the estimate is not the mixture's.

Framing: ``n_fft // 2`` zeros before the signal and every frame that overlaps a sample, so each sample is covered by
the same frames whether or not a row is padded, and a padded batch gives each row what it gives alone.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# the magnitude fed to the separator is |X| ** 0.3: the power-law compression of speech enhancement front-ends,
# which keeps quiet high bands from vanishing beside loud low ones after the global layer norm
_COMPRESSION = 0.3


def _hann(size: int, device) -> torch.Tensor:
    # made on each call rather than kept as a buffer: from_pretrained builds modules on the meta device and a
    # non-persistent buffer would come back uninitialised
    return torch.hann_window(size, device=device)


def _overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """``(batch, window, frames)`` -> ``(batch, (frames - 1) * hop + window)``, overlapping frames summed."""
    window, count = frames.shape[-2:]
    length = (count - 1) * hop + window
    return F.fold(frames, output_size=(1, length), kernel_size=(1, window), stride=(1, hop))[:, 0, 0]


class StftEncoder(nn.Module):
    r"""``(batch, samples) -> (batch, 2 * bins, frames)``: real then imaginary parts of a Hann-windowed STFT,
    ``bins = n_fft // 2 + 1``; ``frames = ceil((samples + n_fft // 2) / hop)``.

    Besides the codec interface of :class:`~.waveform_codec.WaveformEncoder` (``num_frames``, ``forward``), it says
    what the separator sees (:meth:`features`) and how a mask applies (:meth:`apply_mask`, complex).
    """

    def __init__(self, *, n_fft: int, hop: int):
        super().__init__()
        if hop > n_fft // 2 or n_fft % hop:
            raise ValueError(f"the STFT hop ({hop}) must divide the window ({n_fft}) and be at most half of it")
        self.kernel_size, self.stride = n_fft, hop
        self.bins = n_fft // 2 + 1

    # a complex mask: any sign, any size
    mask_nonnegative = False

    @property
    def feature_channels(self) -> int:
        return 3 * self.bins

    @property
    def mask_channels(self) -> int:
        return 2 * self.bins

    def num_frames(self, samples: torch.Tensor | int):
        """Frames covering ``samples`` input samples (ints or integer tensors)."""
        reach = samples + self.kernel_size // 2 + self.stride - 1
        if isinstance(reach, torch.Tensor):
            return torch.div(reach, self.stride, rounding_mode="floor")
        return reach // self.stride

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        frames = self.num_frames(waveform.shape[-1])
        half = self.kernel_size // 2
        right = (frames - 1) * self.stride + self.kernel_size - half - waveform.shape[-1]
        windows = F.pad(waveform.float(), (half, right)).unfold(-1, self.kernel_size, self.stride)
        spectrum = torch.fft.rfft(windows * _hann(self.kernel_size, waveform.device), dim=-1).transpose(
            1, 2
        )  # (batch, bins, frames)
        return torch.cat([spectrum.real, spectrum.imag], dim=1).to(waveform.dtype)

    def features(self, encoded: torch.Tensor) -> torch.Tensor:
        """``(batch, 2 * bins, frames)`` -> ``(batch, 3 * bins, frames)``: compressed magnitude, then the real and
        imaginary parts rescaled to that compressed magnitude."""
        real, imag = encoded.float().chunk(2, dim=1)
        magnitude = torch.sqrt(real.square() + imag.square() + 1e-12)
        compressed = magnitude.pow(_COMPRESSION)
        scale = compressed / magnitude
        return torch.cat([compressed, real * scale, imag * scale], dim=1).to(encoded.dtype)

    @staticmethod
    def apply_mask(encoded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Complex product of the spectrum and the mask, both ``(batch, 2 * bins, frames)`` as real then imaginary."""
        real, imag = encoded.chunk(2, dim=1)
        mask_real, mask_imag = mask.chunk(2, dim=1)
        return torch.cat([real * mask_real - imag * mask_imag, real * mask_imag + imag * mask_real], dim=1)

    @staticmethod
    def ideal_ratio_mask(encoded_target: torch.Tensor, encoded_rest: torch.Tensor) -> torch.Tensor:
        """The magnitude ratio mask ``|T| / (|T| + |R|)`` as a complex mask with no imaginary part."""
        target = torch.sqrt(encoded_target.square().unflatten(1, (2, -1)).sum(1))
        rest = torch.sqrt(encoded_rest.square().unflatten(1, (2, -1)).sum(1))
        ratio = target / (target + rest).clamp_min(1e-8)
        return torch.cat([ratio, torch.zeros_like(ratio)], dim=1)


class StftDecoder(nn.Module):
    r"""``(batch, 2 * bins, frames) -> (batch, samples)``: inverse FFT of each frame, Hann synthesis window and
    overlap-add divided by the summed squared windows (weighted overlap-add), the inverse of :class:`StftEncoder`."""

    def __init__(self, *, n_fft: int, hop: int):
        super().__init__()
        self.kernel_size, self.stride = n_fft, hop

    def forward(self, encoded: torch.Tensor, samples: int) -> torch.Tensor:
        real, imag = encoded.float().chunk(2, dim=1)
        window = _hann(self.kernel_size, encoded.device)
        windows = torch.fft.irfft(torch.complex(real, imag), n=self.kernel_size, dim=1) * window[:, None]
        frames = encoded.shape[-1]
        waveform = _overlap_add(windows, self.stride)
        envelope = _overlap_add(window.square()[None, :, None].expand(1, -1, frames), self.stride)
        half = self.kernel_size // 2
        waveform = (waveform / envelope.clamp_min(1e-8))[:, half : half + samples]
        return F.pad(waveform, (0, max(samples - waveform.shape[-1], 0))).to(encoded.dtype)
