"""Mixing at given signal-to-interference ratios, shared by the corpus generator and dynamic mixing."""

from __future__ import annotations

import numpy as np

PEAK_LIMIT = 0.95


def energy(signal: np.ndarray) -> float:
    return float(np.sum(signal.astype(np.float64) ** 2))


def mix_at_sirs(
    target: np.ndarray, interferers: list[np.ndarray], sirs_db
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    r"""Scale each interferer to ``sir_db`` below the target's energy and add them up.

    Args:
        target: ``(samples,)`` the target at its level.
        interferers: ``[(samples,)]`` interferers at any level, as long as the target.
        sirs_db: one signal-to-interference ratio per interferer, in dB.

    Returns:
        ``(target, mixture, scaled interferers)``, all multiplied by one common gain that keeps the mixture's peak
        under :data:`PEAK_LIMIT` without changing the ratios.
    """
    scaled = [
        wave * np.sqrt(energy(target) / (energy(wave) + 1e-12) / 10 ** (sir / 10))
        for wave, sir in zip(interferers, sirs_db)
    ]
    mixture = target + sum(scaled)
    gain = min(1.0, PEAK_LIMIT / (np.abs(mixture).max() + 1e-12))
    return target * gain, mixture * gain, [wave * gain for wave in scaled]
