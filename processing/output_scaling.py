"""Bringing an extracted waveform to the mixture's scale.

Models trained with a scale-invariant loss (SI-SDR) leave the scale and sign of their output free: a raw estimate
may be 50 times the mixture's level, and the estimate of the next chunk half of it. The least-squares fit of the
mixture onto the estimate, ``<mixture, estimate> / |estimate|^2``, fixes both: an estimate equal to the target comes
back at the target's level in the mixture, and an estimate of silence stays quiet. Energies measured against the
mixture (e.g. where the target is silent) and WAV files (which clip at 1) need it.
"""

from __future__ import annotations


def scale_to_mixture(estimate, mixture):
    """``estimate * <mixture, estimate> / |estimate|^2`` for 1-D numpy arrays or torch tensors of one length
    (an all-zero estimate is returned as it is)."""
    energy = (estimate * estimate).sum()
    if float(energy) == 0.0:
        return estimate
    return estimate * ((mixture * estimate).sum() / energy)
