"""Synthetic noise: deterministic, of the spectral slope and the burstiness it claims, placed at an exact SNR."""

from __future__ import annotations

import numpy as np
import pytest

from processing.mixing import energy, mix_at_sirs
from processing.noise import burst_envelope, coloured_noise, nonstationary_noise

RATE = 16000


def spectral_slope(signal: np.ndarray) -> float:
    """Least-squares slope of log power against log frequency, between 50 Hz and 4 kHz."""
    power = np.abs(np.fft.rfft(signal)) ** 2
    frequencies = np.fft.rfftfreq(len(signal), 1 / RATE)
    band = (frequencies > 50) & (frequencies < 4000)
    return float(np.polyfit(np.log(frequencies[band]), np.log(power[band]), 1)[0])


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0])
def test_coloured_noise_has_the_spectral_slope_it_is_asked_for(exponent):
    noise = coloured_noise(np.random.default_rng(0), 4 * RATE, exponent)
    assert noise.dtype == np.float32 and noise.shape == (4 * RATE,)
    assert np.sqrt(np.mean(noise.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-5)
    assert spectral_slope(noise) == pytest.approx(-exponent, abs=0.1)


def test_noise_is_a_function_of_the_generator():
    first = nonstationary_noise(np.random.default_rng([3, 7]), RATE, RATE)
    again = nonstationary_noise(np.random.default_rng([3, 7]), RATE, RATE)
    other = nonstationary_noise(np.random.default_rng([3, 8]), RATE, RATE)
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_nonstationary_noise_switches_on_and_off():
    envelope = burst_envelope(np.random.default_rng(1), 10 * RATE, RATE)
    assert 0.25 < np.mean(envelope > 0.05) < 0.75  # on for about half of the time
    noise = nonstationary_noise(np.random.default_rng(1), 10 * RATE, RATE)
    frame_energy = (noise.reshape(-1, RATE // 50).astype(np.float64) ** 2).mean(-1)
    assert frame_energy.max() > 100 * np.percentile(frame_energy, 10)  # loud bursts and near-silent gaps


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 5.0, 10.0, 15.0])
def test_mixing_places_the_noise_at_the_exact_snr(snr_db):
    rng = np.random.default_rng(0)
    target = 0.05 * rng.standard_normal(RATE).astype(np.float32)
    target, mixture, (noise,) = mix_at_sirs(target, [coloured_noise(rng, RATE, 1.0)], [snr_db])
    assert 10 * np.log10(energy(target) / energy(mixture - target)) == pytest.approx(snr_db, abs=1e-4)
    assert 10 * np.log10(energy(target) / energy(noise)) == pytest.approx(snr_db, abs=1e-6)
