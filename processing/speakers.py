"""Synthetic speakers: an espeak-ng voice with its settings, a spectral colouring of the voice, and a face.

A speaker is fully determined by the corpus seed and its id, so every worker process rebuilds the same pools.
Pools never share a speaker: ``train``, ``validation`` and ``test`` draw from the in-distribution voice variants,
``unseen_lang`` speaks Italian, Portuguese, Spanish or French, and ``ood`` uses voice variants and settings that
no other pool uses (the held-out part of the generator's space).
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import numpy as np

IN_DISTRIBUTION_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "adam", "anika", "aunty", "belinda", "benjamin", "caleb", "david", "ed", "edward", "iven", "iven2",
    "john", "linda", "max", "michel", "norbert", "paul", "quincy", "rob", "robert", "steph", "steph2",
    "travis", "victor", "zac", "Alex", "Alicia", "Andrea", "Andy", "Annie", "Denis", "Gene", "Hugo",
    "Jacky", "Lee", "Michael", "Mike", "Nguyen", "Reed",
)  # fmt: skip
HELD_OUT_VARIANTS = (
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "grandma",
    "grandpa",
    "shelby",
    "gustave",
    "boris",
    "marcelo",
)
UNSEEN_LANGUAGES = ("it", "pt", "es", "fr")

# (pitch, pitch range, rate) intervals; the ood pool samples outside the in-distribution ones
IN_DISTRIBUTION_SETTINGS = {"pitch": (25, 75), "pitch_range": (30, 80), "rate": (140, 190)}
OOD_SETTINGS = {"pitch": ((8, 22), (78, 92)), "pitch_range": ((5, 25), (85, 100)), "rate": ((115, 135), (195, 215))}

# number of speakers in each pool; the first three are the core in-distribution speakers
POOL_SIZES = {"train": 40, "validation": 6, "test": 10, "unseen_lang": 8, "ood": 8, "babble": 12}


@dataclass(frozen=True)
class Speaker:
    speaker_id: str
    language: str
    voice: str  # espeak voice name with variant, e.g. "en+m3"
    pitch: int
    pitch_range: int
    rate: int
    # spectral colouring: a peaking equaliser and a first-order tilt
    colour_centre_hz: float
    colour_gain_db: float
    colour_q: float
    tilt: float
    # face: grey levels of skin and lips, lip thickness and mouth width as fractions of the ROI side
    skin_tone: float
    lip_tone: float
    lip_thickness: float
    mouth_width: float
    articulation: float  # how far the jaw and lips move (1 = average)
    texture_seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def _rng_for(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _draw_setting(rng: np.random.Generator, interval) -> int:
    # an ood setting is a pair of intervals on either side of the in-distribution one
    if isinstance(interval[0], tuple):
        interval = interval[rng.integers(len(interval))]
    return int(rng.integers(interval[0], interval[1] + 1))


def _make_speaker(seed: int, pool: str, index: int, variants, language: str, settings) -> Speaker:
    speaker_id = f"{pool}-{index:02d}"
    rng = _rng_for(seed, speaker_id)
    variant = variants[index % len(variants)] if pool != "train" else variants[rng.integers(len(variants))]
    return Speaker(
        speaker_id=speaker_id,
        language=language,
        voice=f"{language}+{variant}",
        pitch=_draw_setting(rng, settings["pitch"]),
        pitch_range=_draw_setting(rng, settings["pitch_range"]),
        rate=_draw_setting(rng, settings["rate"]),
        colour_centre_hz=float(rng.uniform(400, 3000)),
        colour_gain_db=float(rng.uniform(-6, 6)),
        colour_q=float(rng.uniform(0.7, 2.0)),
        tilt=float(rng.uniform(-0.4, 0.4)),
        skin_tone=float(rng.uniform(110, 190)),
        lip_tone=float(rng.uniform(0.55, 0.8)),
        lip_thickness=float(rng.uniform(0.06, 0.1)),
        mouth_width=float(rng.uniform(0.26, 0.34)),
        articulation=float(rng.uniform(0.8, 1.2)),
        texture_seed=int(rng.integers(2**31)),
    )


def speaker_pool(pool: str, seed: int, size: int | None = None) -> list[Speaker]:
    """The speakers of one pool (see :data:`POOL_SIZES`).

    ``size`` overrides the number of ``train`` speakers (a corpus preset's ``train_speakers``). Speaker ``i`` is the
    same whatever the size, and the held-out pools never depend on it.
    """
    if pool not in POOL_SIZES:
        raise ValueError(f"unknown speaker pool {pool!r}; choose one of {sorted(POOL_SIZES)}")
    if size is not None and pool != "train":
        raise ValueError(f"only the train pool's size can be changed, not {pool!r}'s")
    if size is not None and size < 2:
        raise ValueError(f"the train pool needs at least 2 speakers (a target and an interferer), got {size}")
    size = size or POOL_SIZES[pool]
    if pool == "ood":
        return [_make_speaker(seed, pool, i, HELD_OUT_VARIANTS, "en", OOD_SETTINGS) for i in range(size)]
    if pool == "babble":
        # the voices of babble noise: drawn (pitch, rate, colour, variant order) under their own names, so no
        # speaker of any split is among them
        variants = IN_DISTRIBUTION_VARIANTS[::-1]
        return [_make_speaker(seed, pool, i, variants, "en", IN_DISTRIBUTION_SETTINGS) for i in range(size)]
    if pool == "unseen_lang":
        return [
            _make_speaker(
                seed,
                pool,
                i,
                IN_DISTRIBUTION_VARIANTS,
                UNSEEN_LANGUAGES[i % len(UNSEEN_LANGUAGES)],
                IN_DISTRIBUTION_SETTINGS,
            )
            for i in range(size)
        ]
    # validation and test speakers take variants in order after the ones reserved at the front for them,
    # so a held-out speaker's voice variant is never drawn for training
    reserved = POOL_SIZES["validation"] + POOL_SIZES["test"]
    if pool == "train":
        return [
            _make_speaker(seed, pool, i, IN_DISTRIBUTION_VARIANTS[reserved:], "en", IN_DISTRIBUTION_SETTINGS)
            for i in range(size)
        ]
    offset = 0 if pool == "validation" else POOL_SIZES["validation"]
    variants = IN_DISTRIBUTION_VARIANTS[offset : offset + size]
    return [_make_speaker(seed, pool, i, variants, "en", IN_DISTRIBUTION_SETTINGS) for i in range(size)]
