"""Grayscale mouth-ROI video rendered from phone timings.

Each IPA phone maps to articulatory targets (a viseme): jaw opening, lip width, lip rounding, teeth and tongue
visibility. The targets form step tracks on a 10 ms grid, a Gaussian smooths them (coarticulation: the mouth
starts moving towards the next phone before it begins), and frame ``k`` samples the tracks at ``k / fps`` seconds,
so the mouth in frame ``k`` shows the viseme active at that time. A speaker's face sets the skin and lip grey
levels, lip thickness, mouth width, a skin texture and how far the mouth moves; each clip adds small head motion,
lighting changes and sensor noise.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np

from .speakers import Speaker
from .speech_synthesis import Phone

# articulatory targets: (opening, width, rounding, teeth, tongue), each in [0, 1]
REST = (0.02, 0.5, 0.1, 0.0, 0.0)
_VISEMES = {
    "bilabial": (0.0, 0.5, 0.15, 0.0, 0.0),
    "labiodental": (0.08, 0.5, 0.0, 1.0, 0.0),
    "dental": (0.2, 0.55, 0.0, 0.7, 1.0),
    "alveolar": (0.18, 0.6, 0.0, 0.8, 0.4),
    "sibilant": (0.1, 0.65, 0.0, 1.0, 0.0),
    "postalveolar": (0.16, 0.45, 0.7, 0.8, 0.0),
    "velar": (0.3, 0.55, 0.1, 0.3, 0.3),
    "glottal": (0.35, 0.55, 0.0, 0.2, 0.2),
    "labial_approximant": (0.12, 0.3, 1.0, 0.0, 0.0),
    "palatal": (0.18, 0.7, 0.0, 0.7, 0.3),
    "rhotic": (0.2, 0.45, 0.5, 0.5, 0.3),
    "open_vowel": (0.9, 0.65, 0.05, 0.4, 0.3),
    "open_mid_vowel": (0.65, 0.65, 0.1, 0.5, 0.3),
    "mid_vowel": (0.45, 0.6, 0.1, 0.5, 0.3),
    "close_front_vowel": (0.28, 0.9, 0.0, 0.8, 0.4),
    "rounded_mid_vowel": (0.5, 0.35, 0.8, 0.2, 0.2),
    "rounded_close_vowel": (0.22, 0.25, 1.0, 0.1, 0.1),
}
_SYMBOL_CLASSES = {
    "bilabial": "pbmɸβ",
    "labiodental": "fvɱ",
    "dental": "θð",
    "alveolar": "tdnlɾɫɬ",
    "sibilant": "szʦʣ",
    "postalveolar": "ʃʒʧʤɕʑ",
    "velar": "kgŋxɣqɡχ",
    "glottal": "hʔɦ",
    "labial_approximant": "wʍɥ",
    "palatal": "jɲʎç",
    "rhotic": "rɹʁɻʀ",
    "open_vowel": "aɑæɒɐ",
    "open_mid_vowel": "ɛʌœɜ",
    "mid_vowel": "eəɘɚ",
    "close_front_vowel": "iɪɨ",
    "rounded_mid_vowel": "oɔøɵ",
    "rounded_close_vowel": "uʊyʏɯ",
}
_CLASS_OF_SYMBOL = {symbol: name for name, symbols in _SYMBOL_CLASSES.items() for symbol in symbols}
_IGNORED_MARKS = "ˈˌːˑ̃͡-_'|"
TRACK_RATE = 100  # Hz of the articulatory tracks
COARTICULATION_SECONDS = 0.03  # standard deviation of the smoothing Gaussian


def viseme_targets(symbol: str) -> list[tuple[float, ...]]:
    """Articulatory targets of an IPA phone; a diphthong or affricate gives one target per component."""
    letters = [
        c for c in unicodedata.normalize("NFD", symbol) if c not in _IGNORED_MARKS and not unicodedata.combining(c)
    ]
    classes = [_CLASS_OF_SYMBOL[c] for c in letters if c in _CLASS_OF_SYMBOL]
    targets = [_VISEMES[name] for name in classes]
    # an affricate (tʃ, dʒ) looks like its release; only vowel sequences (diphthongs) glide through targets
    if len(targets) > 1 and not any(name.endswith("vowel") for name in classes):
        targets = targets[-1:]
    return targets or [_VISEMES["mid_vowel"]]


def articulation_tracks(phones: list[Phone], duration: float, offset: float = 0.0) -> np.ndarray:
    """Smoothed articulatory tracks, ``(steps, 5)`` at :data:`TRACK_RATE` Hz over ``duration`` seconds.

    ``offset`` shifts the phones in time (where the utterance starts inside the clip).
    """
    steps = int(np.ceil(duration * TRACK_RATE)) + 1
    tracks = np.tile(np.asarray(REST, dtype=np.float64), (steps, 1))
    for phone in phones:
        targets = viseme_targets(phone.symbol)
        start, end = phone.start + offset, phone.end + offset
        boundaries = np.linspace(start, end, len(targets) + 1)
        for target, (a, b) in zip(targets, zip(boundaries[:-1], boundaries[1:])):
            first, last = int(round(a * TRACK_RATE)), int(round(b * TRACK_RATE))
            tracks[max(first, 0) : max(min(last, steps), 0)] = target
    radius = int(3 * COARTICULATION_SECONDS * TRACK_RATE)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / (COARTICULATION_SECONDS * TRACK_RATE)) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(tracks, ((radius, radius), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, i], kernel, mode="valid") for i in range(tracks.shape[1])], axis=1)


@dataclass(frozen=True)
class ClipNuisance:
    """Per-clip variation: head motion (pixels, as a fraction of the ROI side), lighting and noise."""

    drift_x: float
    drift_y: float
    drift_hz: float
    drift_phase: float
    jitter: float
    gain: float
    gradient_x: float
    gradient_y: float
    noise_std: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> ClipNuisance:
        return cls(
            drift_x=float(rng.uniform(-0.03, 0.03)),
            drift_y=float(rng.uniform(-0.03, 0.03)),
            drift_hz=float(rng.uniform(0.1, 0.6)),
            drift_phase=float(rng.uniform(0, 2 * np.pi)),
            jitter=float(rng.uniform(0.0, 0.006)),
            gain=float(rng.uniform(0.8, 1.15)),
            gradient_x=float(rng.uniform(-0.15, 0.15)),
            gradient_y=float(rng.uniform(-0.15, 0.15)),
            noise_std=float(rng.uniform(1.0, 4.0)),
        )


def _skin_texture(speaker: Speaker, size: int) -> np.ndarray:
    # a fixed low-frequency pattern per speaker: smooth noise upsampled from a coarse grid
    rng = np.random.default_rng(speaker.texture_seed)
    coarse = rng.normal(0.0, 1.0, (6, 6))
    axis = np.linspace(0, 5, size)
    rows = np.array([np.interp(axis, np.arange(6), coarse[i]) for i in range(6)])
    texture = np.array([np.interp(axis, np.arange(6), rows[:, j]) for j in range(size)]).T
    return 6.0 * texture + rng.normal(0.0, 1.5, (size, size))


def _soft_inside(value: np.ndarray, sharpness: float) -> np.ndarray:
    """1 inside (value < 0), 0 outside, with a one-pixel soft edge."""
    return 1.0 / (1.0 + np.exp(np.clip(value * sharpness, -30, 30)))


def render_mouth(
    tracks: np.ndarray,
    num_frames: int,
    fps: int,
    size: int,
    speaker: Speaker,
    nuisance: ClipNuisance,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render ``num_frames`` frames of a ``size x size`` mouth ROI from articulatory ``tracks``.

    Returns:
        uint8 array ``(frames, size, size)``.
    """
    frame_times = np.arange(num_frames) / fps
    steps = np.clip(np.round(frame_times * TRACK_RATE).astype(int), 0, len(tracks) - 1)
    opening, width, rounding, teeth, tongue = (tracks[steps, i][:, None, None] for i in range(5))
    opening = np.clip(opening * speaker.articulation, 0.0, 1.0)

    time = frame_times[:, None, None]
    centre_x = 0.5 + nuisance.drift_x * np.sin(2 * np.pi * nuisance.drift_hz * time + nuisance.drift_phase)
    centre_y = 0.55 + nuisance.drift_y * np.cos(2 * np.pi * nuisance.drift_hz * time + nuisance.drift_phase)
    centre_x = centre_x + rng.normal(0, nuisance.jitter, (num_frames, 1, 1))
    centre_y = centre_y + rng.normal(0, nuisance.jitter, (num_frames, 1, 1))

    grid = (np.arange(size) + 0.5) / size
    x = grid[None, None, :] - centre_x  # (frames, 1, size)
    y = grid[None, :, None] - centre_y  # (frames, size, 1)
    sharpness = size / 2.0

    half_width = speaker.mouth_width * (0.75 + 0.35 * width - 0.3 * rounding)
    inner_height = 0.18 * opening + 0.004
    thickness = speaker.lip_thickness * (1.0 + 0.3 * rounding)
    u = np.clip(x / half_width, -1.0, 1.0)
    profile = np.sqrt(1.0 - u**2)
    horizontally_inside = _soft_inside(np.abs(x) - half_width, sharpness * 2)

    # the jaw drops the lower lip further than the upper lip rises
    cavity_top = -0.35 * inner_height * profile
    cavity_bottom = 0.65 * inner_height * profile * 2.0
    lips_top = cavity_top - thickness * (0.6 + 0.4 * profile)
    lips_bottom = cavity_bottom + thickness * (0.8 + 0.4 * profile)
    lip_width_scale = 1.0 + thickness / half_width
    lips_horizontal = _soft_inside(np.abs(x) - half_width * lip_width_scale, sharpness * 2)

    inside_lips = _soft_inside(lips_top - y, sharpness) * _soft_inside(y - lips_bottom, sharpness) * lips_horizontal
    inside_cavity = (
        _soft_inside(cavity_top - y, sharpness) * _soft_inside(y - cavity_bottom, sharpness) * horizontally_inside
    )
    teeth_edge = cavity_top + teeth * np.minimum(cavity_bottom - cavity_top, 0.045)
    inside_teeth = inside_cavity * _soft_inside(y - teeth_edge, sharpness)
    tongue_edge = cavity_bottom - tongue * 0.5 * (cavity_bottom - cavity_top)
    inside_tongue = inside_cavity * _soft_inside(tongue_edge - y, sharpness) * (1.0 - inside_teeth)

    skin = speaker.skin_tone + _skin_texture(speaker, size)[None]
    image = skin * (1.0 - inside_lips) + speaker.skin_tone * speaker.lip_tone * inside_lips
    image = image * (1.0 - inside_cavity) + 28.0 * inside_cavity
    image = image + (215.0 - 28.0) * inside_teeth + (105.0 - 28.0) * inside_tongue

    lighting = nuisance.gain * (
        1.0 + nuisance.gradient_x * (grid[None, None, :] - 0.5) + nuisance.gradient_y * (grid[None, :, None] - 0.5)
    )
    image = image * lighting + rng.normal(0.0, nuisance.noise_std, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)
