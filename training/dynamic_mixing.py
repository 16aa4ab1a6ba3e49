"""Dynamic mixing: a new mixture for every training step, from the clean utterances of the training split.

A stored corpus of 1,200 mixtures is seen again and again by a separator that trains for tens of thousands of
steps; remixing each target (with its lips and transcript) with interferers drawn anew turns it into an unbounded
stream. The draws come from a generator seeded by ``(seed, epoch, index)``, like every other training draw, so a run
is reproducible whatever the number of processes and a resumed run continues exactly.

The interferer pool is every clean utterance the split holds: the targets and the corpus's own (scaled) interferers,
each with its speaker. An interferer is never spoken by the target's speaker, and two interferers of one mixture
never share a speaker.

With ``noise_snr_range_db`` each mixture also gets noise at an SNR drawn from that range (the target's energy over
the noise's): another row's stored noise (a `*_noisy` split holds coloured, babble and nonstationary noises),
rotated by a random offset, or, in a split without stored noises, coloured or nonstationary noise made on the spot.
With ``num_interferers=0`` this is speech enhancement's dynamic mixing: the target in new noise at every step.

With ``pitch_matched_share`` that share of the interferers is drawn from the speakers whose voices sit closest to the
target's in pitch (the median pitch of a few of their utterances): two female voices, or two low male voices, the
mixtures a separator finds hardest. Drawn uniformly, a corpus where a quarter of the speakers have high voices makes
about one mixture in sixteen of two high voices, while a held-out set with more of them can hold many more.
"""

from __future__ import annotations

import numpy as np

from processing.mixing import mix_at_sirs
from processing.noise import EXPONENT_RANGE, coloured_noise, nonstationary_noise
from processing.pitch import median_pitch_hz

SIR_RANGE_DB = (-10.0, 10.0)  # the VoxCeleb2 2-mix protocol of USEV / MuSE / ClearerVoice
PITCH_NEIGHBOURS_SHARE = 0.1  # a pitch-matched interferer comes from the nearest tenth of the speakers (at least 1)
PITCH_UTTERANCES_PER_SPEAKER = 3  # a speaker's pitch: the median over up to this many of its utterances


class DynamicMixer:
    r"""Remixes corpus-schema examples with interferers from other speakers of the same dataset.

    Args:
        dataset: a map-style dataset with ``target``, ``target_speaker``, and optionally ``interferers`` with
            ``interferer_speakers`` (their clean speech joins the pool).
        num_interferers: interferers per mixture (0: noise only, which needs ``noise_snr_range_db``).
        sir_range_db: each interferer's SIR is drawn uniformly from this range.
        noise_snr_range_db: add noise at an SNR drawn uniformly from this range (None: no noise).
        pitch_matched_share: the probability that an interferer is drawn from the speakers nearest the target in
            pitch rather than from all speakers (0: uniform draws, the same as before this option).
    """

    def __init__(
        self,
        dataset,
        num_interferers: int = 1,
        sir_range_db: tuple[float, float] = SIR_RANGE_DB,
        noise_snr_range_db: tuple[float, float] | None = None,
        pitch_matched_share: float = 0.0,
    ):
        if num_interferers < 0 or (num_interferers == 0 and noise_snr_range_db is None):
            raise ValueError(
                f"dynamic mixing needs at least 1 interferer, or noise (an SNR range), got {num_interferers} "
                "interferers and no noise"
            )
        if not 0.0 <= pitch_matched_share <= 1.0:
            raise ValueError(f"the pitch-matched share is a probability in [0, 1], got {pitch_matched_share}")
        if noise_snr_range_db is not None and not noise_snr_range_db[0] <= noise_snr_range_db[1]:
            raise ValueError(f"the noise SNR range must be LOW,HIGH with LOW <= HIGH, got {noise_snr_range_db}")
        columns = set(getattr(dataset, "column_names", None) or dataset[0].keys())
        if not {"target", "target_speaker"} <= columns:
            raise ValueError(
                f"dynamic mixing needs clean targets with their speakers (columns target, target_speaker); the dataset "
                f"has {sorted(columns)}: train with --dynamic_mixing false"
            )
        # only the waveforms are read for interferers: a whole row (lips included) costs ten times more
        audio_columns = [name for name in ("target", "interferers", "noise", "noise_type") if name in columns]
        self.audio = dataset.select_columns(audio_columns) if hasattr(dataset, "select_columns") else dataset
        self.num_interferers = num_interferers
        self.sir_range_db = sir_range_db
        self.noise_snr_range_db = noise_snr_range_db
        self.noise_rows = (
            [row for row, noise in enumerate(dataset["noise"]) if len(noise)]
            if noise_snr_range_db is not None and "noise" in columns
            else []
        )
        column = (
            dataset["target_speaker"] if hasattr(dataset, "column_names") else [e["target_speaker"] for e in dataset]
        )
        # the pool: (row, None) is a row's target, (row, k) its k-th interferer
        self.sources: list[tuple[int, int | None]] = [(row, None) for row in range(len(column))]
        self.speakers: list[str] = [str(speaker) for speaker in column]
        if "interferer_speakers" in columns and "interferers" in columns:
            for row, speakers in enumerate(dataset["interferer_speakers"]):
                for k, speaker in enumerate(speakers):
                    self.sources.append((row, k))
                    self.speakers.append(str(speaker))
        self.speakers_array = np.asarray(self.speakers)
        if len(set(self.speakers)) <= num_interferers:
            raise ValueError(
                f"dynamic mixing with {num_interferers} interferer(s) needs at least {num_interferers + 1} speakers; "
                f"the dataset has {len(set(self.speakers))}"
            )
        self.pitch_matched_share = pitch_matched_share
        self.sampling_rate = int(dataset[0]["sampling_rate"]) if "sampling_rate" in columns else 16000
        self.pitch_neighbours = self._pitch_neighbours() if pitch_matched_share > 0 and num_interferers else {}

    def _pitch_neighbours(self) -> dict[str, list[str]]:
        """Each speaker's nearest speakers in (log) median pitch; speakers without a pitch estimate have none."""
        sources_of: dict[str, list[int]] = {}
        for source, speaker in enumerate(self.speakers):
            sources_of.setdefault(speaker, []).append(source)
        pitch = {}
        for speaker, sources in sources_of.items():
            estimates = [
                median_pitch_hz(self._speech(s), self.sampling_rate) for s in sources[:PITCH_UTTERANCES_PER_SPEAKER]
            ]
            if not np.all(np.isnan(estimates)):
                pitch[speaker] = float(np.nanmedian(estimates))
        self.speaker_pitch_hz = pitch
        size = max(1, int(round(PITCH_NEIGHBOURS_SHARE * len(sources_of))))
        names = list(pitch)
        log_pitch = np.log([pitch[name] for name in names])
        neighbours = {}
        for index, name in enumerate(names):
            order = np.argsort(np.abs(log_pitch - log_pitch[index]), kind="stable")
            neighbours[name] = [names[other] for other in order if other != index][:size]
        return neighbours

    def _speech(self, source: int) -> np.ndarray:
        row, k = self.sources[source]
        example = self.audio[row]
        wave = example["target"] if k is None else example["interferers"][k]
        return np.asarray(wave, dtype=np.float32)

    def _noise(self, length: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """``(length,)`` noise and its kind: a stored one rotated at random, else one made on the spot."""
        if self.noise_rows:
            row = self.noise_rows[rng.integers(len(self.noise_rows))]
            example = self.audio[row]
            noise = np.resize(np.asarray(example["noise"], dtype=np.float32), length)  # repeated if too short
            kind = str(example["noise_type"]) if "noise_type" in example else "stored"
            return np.roll(noise, int(rng.integers(length))), kind
        if rng.integers(2):
            return nonstationary_noise(rng, length, self.sampling_rate), "nonstationary"
        return coloured_noise(rng, length, rng.uniform(*EXPONENT_RANGE)), "coloured"

    def remix(self, example: dict, rng: np.random.Generator) -> dict:
        """``example`` with a new ``mixture``, ``interferers``, ``interferer_speakers`` and ``sir_db`` (and ``noise``,
        ``noise_type``, ``snr_db`` when mixing noise); the target, its lips and its text are kept. Each interferer is
        cut or zero-padded to the target's length and rotated by a random offset."""
        target = np.asarray(example["target"], dtype=np.float32)
        length = len(target)
        taken = {str(example["target_speaker"])}
        interferers, speakers = [], []
        for _ in range(self.num_interferers):
            allowed = np.flatnonzero(~np.isin(self.speakers_array, list(taken)))
            # the draw for a pitch match is only made when the option is on, so uniform runs keep their draws
            if self.pitch_matched_share > 0 and rng.random() < self.pitch_matched_share:
                near = set(self.pitch_neighbours.get(str(example["target_speaker"]), ())) - taken
                matched = allowed[np.isin(self.speakers_array[allowed], list(near))]
                allowed = matched if len(matched) else allowed
            source = int(allowed[rng.integers(len(allowed))])
            wave = self._speech(source)[:length]
            wave = np.pad(wave, (0, length - len(wave)))
            interferers.append(np.roll(wave, int(rng.integers(length))))
            speakers.append(self.speakers[source])
            taken.add(self.speakers[source])
        sirs = list(rng.uniform(*self.sir_range_db, size=self.num_interferers))
        noise_columns = {}
        if self.noise_snr_range_db is not None:
            noise, kind = self._noise(length, rng)
            snr = float(rng.uniform(*self.noise_snr_range_db))
            target, mixture, scaled = mix_at_sirs(target, [*interferers, noise], [*sirs, snr])
            scaled, noise = scaled[:-1], scaled[-1]
            noise_columns = {"noise": noise.astype(np.float32), "noise_type": kind, "snr_db": snr}
        else:
            target, mixture, scaled = mix_at_sirs(target, interferers, sirs)
        return {
            **example,
            "target": target.astype(np.float32),
            "mixture": mixture.astype(np.float32),
            "interferers": [wave.astype(np.float32) for wave in scaled],
            "interferer_speakers": speakers,
            "sir_db": [float(sir) for sir in sirs],
            **noise_columns,
        }
