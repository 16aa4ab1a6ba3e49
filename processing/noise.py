"""Synthetic noise for speech-in-noise examples, offline and deterministic (a function of the generator passed in).

Two kinds are pure signal processing and live here:
- ``coloured``: stationary Gaussian noise whose power falls as ``1 / f ** exponent`` (0: white, 1: pink, 2: brown);
- ``nonstationary``: coloured noise switched on and off in bursts, with a slow amplitude modulation (doors,
  traffic, machinery that starts and stops).
The third kind, ``babble`` (several talkers from a speaker pool that no other split uses), needs the speech
synthesiser and is made by the corpus generator. Every function returns ``(samples,)`` float32 of unit RMS; the
caller sets the level (``processing.mixing.mix_at_sirs`` places it at an exact SNR).
"""

from __future__ import annotations

import numpy as np

NOISE_TYPES = ("coloured", "babble", "nonstationary")
# the SNRs of speech-in-noise training: the corpus's train_noisy/validation_noisy and dynamic mixing in noise
NOISY_TRAIN_SNR_RANGE_DB = (-5.0, 15.0)
EXPONENT_RANGE = (0.0, 2.0)
BURST_SECONDS = (0.1, 0.8)
MODULATION_HZ = (0.5, 4.0)


def unit_rms(signal: np.ndarray) -> np.ndarray:
    return (signal / (np.sqrt(np.mean(signal.astype(np.float64) ** 2)) + 1e-12)).astype(np.float32)


def coloured_noise(rng: np.random.Generator, samples: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectral density proportional to ``1 / f ** exponent``: ``(samples,)``."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    frequencies = np.fft.rfftfreq(samples)
    frequencies[0] = frequencies[1] if samples > 1 else 1.0  # no infinite gain at DC
    spectrum *= frequencies ** (-exponent / 2)
    return unit_rms(np.fft.irfft(spectrum, n=samples))


def burst_envelope(rng: np.random.Generator, samples: int, sampling_rate: int) -> np.ndarray:
    """On/off gates of random lengths (:data:`BURST_SECONDS`) with 10 ms fades, times a slow sinusoidal
    modulation (:data:`MODULATION_HZ`): ``(samples,)`` in [0, 1], on for about half of the time."""
    envelope = np.zeros(samples)
    position, on = 0, bool(rng.integers(2))
    while position < samples:
        length = int(rng.uniform(*BURST_SECONDS) * sampling_rate)
        if on:
            envelope[position : position + length] = 1.0
        position, on = position + length, not on
    fade = max(1, int(0.01 * sampling_rate))
    envelope = np.convolve(envelope, np.ones(fade) / fade, mode="same")
    time = np.arange(samples) / sampling_rate
    modulation = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(*MODULATION_HZ) * time + rng.uniform(0, 2 * np.pi))
    return envelope * modulation


def nonstationary_noise(rng: np.random.Generator, samples: int, sampling_rate: int) -> np.ndarray:
    """Coloured noise of a random exponent under :func:`burst_envelope`: ``(samples,)``, unit RMS."""
    noise = coloured_noise(rng, samples, rng.uniform(*EXPONENT_RANGE))
    envelope = burst_envelope(rng, samples, sampling_rate)
    if not envelope.any():  # a clip shorter than the first gate: keep it audible
        envelope[:] = 1.0
    return unit_rms(noise * envelope)
