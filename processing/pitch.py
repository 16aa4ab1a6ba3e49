"""A speaker's register: the median fundamental frequency of its voiced speech.

Dynamic mixing uses it to pair a target with interferers of a similar register (two female voices, two low male
voices), the mixtures a separator finds hardest. The frame-wise estimate is torchaudio's normalised
cross-correlation pitch detector; only frames with speech energy count, so pauses do not drag the median.

The detector can take twice or half the period: on a perfectly steady synthetic tone it does so on every frame, and
on the 200 training speakers of the `many-speakers` corpus (the median over 3 utterances each) 3 came out an octave
off their voice variant's other speakers. That is good enough to group voices by register, not to measure pitch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio

PITCH_FRAME_SECONDS = 0.01  # torchaudio's detector gives one estimate per 10 ms frame
PITCH_RANGE_HZ = (60.0, 450.0)  # speaking voices, low male to child
ACTIVE_FRAME_DB = -25.0  # a frame counts when its energy is within this of the loudest frame's
# a voice is "high" from this median pitch on: between the usual ranges of adult male (about 85 to 155 Hz) and
# female (about 165 to 255 Hz) speaking voices
HIGH_VOICE_HZ = 150.0


def median_pitch_hz(waveform: np.ndarray, sampling_rate: int) -> float:
    """The median pitch in Hz of the speech in ``waveform`` (``(samples,)``), or NaN when it holds no speech."""
    wave = torch.as_tensor(np.asarray(waveform, dtype=np.float32))
    if wave.ndim != 1:
        raise ValueError(f"median_pitch_hz takes one channel, a (samples,) waveform; got shape {tuple(wave.shape)}")
    frame = int(round(PITCH_FRAME_SECONDS * sampling_rate))
    if len(wave) < 3 * frame or not torch.any(wave != 0):
        return math.nan
    pitch = torchaudio.functional.detect_pitch_frequency(
        wave[None], sampling_rate, frame_time=PITCH_FRAME_SECONDS, freq_low=int(PITCH_RANGE_HZ[0])
    )[0]
    frames = wave[: len(wave) // frame * frame].reshape(-1, frame)
    energy_db = 10 * torch.log10(frames.pow(2).mean(dim=1) + 1e-12)
    active = energy_db[: len(pitch)] > energy_db.max() + ACTIVE_FRAME_DB
    voiced = pitch[: len(active)][active]
    voiced = voiced[(voiced >= PITCH_RANGE_HZ[0]) & (voiced <= PITCH_RANGE_HZ[1])]
    return float(voiced.median()) if len(voiced) else math.nan


def voice_register(waveform: np.ndarray, sampling_rate: int) -> str:
    """``"high"`` or ``"low"`` by the median pitch of ``waveform`` against :data:`HIGH_VOICE_HZ`, or ``"unvoiced"``."""
    pitch = median_pitch_hz(waveform, sampling_rate)
    if math.isnan(pitch):
        return "unvoiced"
    return "high" if pitch >= HIGH_VOICE_HZ else "low"
