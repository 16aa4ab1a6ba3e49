"""The embedded audio-visual corpus: synthetic speakers saying chatterbot conversations, with rendered lips.

Every example is a function of ``(seed, split, index)`` alone, so a corpus is reproducible whatever the number
of workers. Splits are written one at a time into ``OUT.partial/`` and moved into place when complete; an
interrupted run started again with the same arguments keeps the finished splits and redoes only the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zlib
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .lip_rendering import ClipNuisance, articulation_tracks, render_mouth
from .mixing import mix_at_sirs
from .noise import (
    EXPONENT_RANGE,
    NOISE_TYPES,
    NOISY_TRAIN_SNR_RANGE_DB,
    coloured_noise,
    nonstationary_noise,
    unit_rms,
)
from .speakers import POOL_SIZES, UNSEEN_LANGUAGES, Speaker, speaker_pool
from .speech_synthesis import Phone, Utterance, synthesize
from .text_corpus import Turn, conversation_pool
from .visual_impairment import IMPAIRMENT_TYPES, TEST_RATIOS, impair_lips

SAMPLING_RATE = 16000
FPS = 25
TARGET_LEVEL_DBFS = -25.0
SIR_RANGE_DB = (-10.0, 10.0)
MAX_ONSET_SECONDS = 0.5
MAX_TEXT_DRAWS = 8
# speech in noise: SNR is the target's energy over the noise's, exact in every example
NOISY_TEST_SNRS_DB = (-5.0, 0.0, 5.0, 10.0, 15.0)
BABBLE_TALKERS = (3, 6)  # inclusive range of talkers in one babble noise


@dataclass(frozen=True)
class SplitSpec:
    """How a split is made: whose voices, which text, how many interferers, which scenario."""

    speaker_pool: str
    text_split: str
    num_interferers: int = 1
    scenario: str = "core"  # core | impaired | switch | noisy (the target in noise, no interfering talker)


SPLITS = {
    "train": SplitSpec("train", "train"),
    "validation": SplitSpec("validation", "validation"),
    "test": SplitSpec("test", "test"),
    "test_impaired": SplitSpec("test", "test", scenario="impaired"),
    "test_unseen_lang": SplitSpec("unseen_lang", "unseen_lang"),
    "test_switch": SplitSpec("test", "test", scenario="switch"),
    "test_3mix": SplitSpec("test", "test", num_interferers=2),
    "test_ood": SplitSpec("ood", "ood"),
    "train_noisy": SplitSpec("train", "train", num_interferers=0, scenario="noisy"),
    "validation_noisy": SplitSpec("validation", "validation", num_interferers=0, scenario="noisy"),
    # one example per (noise type, SNR) cell of NOISE_TYPES x NOISY_TEST_SNRS_DB, repeated
    "test_noisy": SplitSpec("test", "test", num_interferers=0, scenario="noisy"),
}


@dataclass(frozen=True)
class CorpusPreset:
    name: str
    roi_size: int  # side of the square mouth ROI in pixels
    clip_seconds: float
    split_sizes: dict = field(default_factory=dict)
    train_speakers: int = POOL_SIZES["train"]  # the held-out pools keep their sizes whatever this is


def _sizes(train, validation, test, impaired_per_cell, others, noisy_per_cell):
    return {
        "train": train,
        "validation": validation,
        "test": test,
        # one example per (impairment type, ratio) cell, repeated
        "test_impaired": impaired_per_cell * len(IMPAIRMENT_TYPES) * len(TEST_RATIOS),
        "test_unseen_lang": others,
        "test_switch": others,
        "test_3mix": others,
        "test_ood": others,
        "train_noisy": train,
        "validation_noisy": validation,
        "test_noisy": noisy_per_cell * len(NOISE_TYPES) * len(NOISY_TEST_SNRS_DB),
    }


DEFAULT_PRESET = CorpusPreset("default", roi_size=48, clip_seconds=3.0, split_sizes=_sizes(1200, 100, 150, 8, 100, 10))
CORPUS_PRESETS = {
    "tiny": CorpusPreset("tiny", roi_size=32, clip_seconds=3.0, split_sizes=_sizes(24, 4, 6, 1, 4, 1)),
    "default": DEFAULT_PRESET,
    # the default corpus with five times the training speakers and four times the training mixtures (about 4 hours);
    # its validation and test splits are the default's, example for example, so scores compare directly
    "many-speakers": replace(
        DEFAULT_PRESET,
        name="many-speakers",
        split_sizes={**DEFAULT_PRESET.split_sizes, "train": 4800, "train_noisy": 4800},
        train_speakers=200,
    ),
    # about 33 hours of training mixtures
    "full": CorpusPreset("full", roi_size=88, clip_seconds=4.0, split_sizes=_sizes(30000, 1000, 2000, 100, 1000, 100)),
}


def corpus_features(roi_size: int):
    """The `datasets.Features` of every split."""
    from datasets import Array3D, Features, List, Value

    waveform = List(Value("float32"))
    return Features(
        {
            "mixture": waveform,
            "target": waveform,
            "interferers": List(waveform),
            "sampling_rate": Value("int32"),
            "lips": Array3D(shape=(None, roi_size, roi_size), dtype="uint8"),
            "fps": Value("int32"),
            "transcript": Value("string"),
            "previous_turn": Value("string"),
            "language": Value("string"),
            "domain": Value("string"),
            "target_speaker": Value("string"),
            "interferer_speakers": List(Value("string")),
            "sir_db": List(Value("float32")),
            "target_activity": List(Value("uint8")),
            "word_timings": List({"word": Value("string"), "start": Value("float32"), "end": Value("float32")}),
            "phoneme_timings": List({"phoneme": Value("string"), "start": Value("float32"), "end": Value("float32")}),
            "impairment": Value("string"),
            "impaired_ratio": Value("float32"),
            # speech in noise (the *_noisy splits): the noise as mixed (empty elsewhere), its kind ("none"
            # elsewhere) and the SNR in dB (NaN elsewhere); mixture = target + sum(interferers) + noise
            "noise": waveform,
            "noise_type": Value("string"),
            "snr_db": Value("float32"),
        }
    )


@dataclass
class _PlacedSpeech:
    """An utterance resampled to the corpus rate and placed in a clip."""

    waveform: np.ndarray  # (clip_samples,)
    transcript: str
    phones: list  # list[Phone], clip time
    words: list  # list[tuple[str, float, float]], clip time


def _colour(waveform: np.ndarray, speaker: Speaker, sampling_rate: int) -> np.ndarray:
    import torch
    import torchaudio.functional as F

    signal = torch.from_numpy(waveform)[None]
    signal = F.equalizer_biquad(
        signal, sampling_rate, speaker.colour_centre_hz, speaker.colour_gain_db, speaker.colour_q
    )
    # first-order tilt: y[n] = x[n] - tilt * x[n-1]
    signal = torch.cat([signal[:, :1], signal[:, 1:] - speaker.tilt * signal[:, :-1]], dim=1)
    return signal[0].numpy()


def _resample(waveform: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    import torch
    import torchaudio.functional as F

    return F.resample(torch.from_numpy(waveform), from_rate, to_rate).numpy()


def _speak_turns(turns: list[Turn], start: int, speaker: Speaker, min_seconds: float, max_seconds: float):
    """Speak turns from ``start`` on, adding the following turns of the conversation until ``min_seconds``."""
    stop = start + 1
    while True:
        text = " ".join(turn.text for turn in turns[start:stop])
        utterance = synthesize(text, speaker.voice, speaker.rate, speaker.pitch, speaker.pitch_range)
        if utterance.duration >= min_seconds or stop == len(turns) or utterance.duration >= max_seconds:
            return utterance
        stop += 1


def _place(
    utterance: Utterance, speaker: Speaker, clip_seconds: float, max_seconds: float, onset: float
) -> _PlacedSpeech:
    """Colour, resample, cut at the last whole word that fits ``max_seconds``, and shift by ``onset`` seconds."""
    kept_words = [word for word in utterance.words if word.end <= max_seconds] or utterance.words[:1]
    cut = min(utterance.duration, max_seconds) if len(kept_words) == len(utterance.words) else kept_words[-1].end
    transcript = (
        utterance.text if len(kept_words) == len(utterance.words) else utterance.text[: kept_words[-1].text_end]
    )
    waveform = _colour(utterance.waveform, speaker, utterance.sampling_rate)
    waveform = _resample(waveform, utterance.sampling_rate, SAMPLING_RATE)[: int(round(cut * SAMPLING_RATE))]
    fade = min(len(waveform), int(0.01 * SAMPLING_RATE))
    waveform[len(waveform) - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    clip_samples = int(round(clip_seconds * SAMPLING_RATE))
    start = int(round(onset * SAMPLING_RATE))
    placed = np.zeros(clip_samples, dtype=np.float32)
    length = min(len(waveform), clip_samples - start)
    placed[start : start + length] = waveform[:length]
    phones = [Phone(p.symbol, p.start + onset, min(p.end, cut) + onset) for p in utterance.phones if p.start < cut]
    words = [(w.word, w.start + onset, w.end + onset) for w in kept_words]
    return _PlacedSpeech(placed, transcript.strip(), phones, words)


def frame_activity(phones: list[Phone], num_frames: int, fps: int) -> np.ndarray:
    """1 where frame ``k`` (time ``k / fps``) falls inside a spoken phone, else 0; ``(frames,)`` uint8."""
    times = np.arange(num_frames) / fps
    active = np.zeros(num_frames, dtype=np.uint8)
    for phone in phones:
        active[(times >= phone.start) & (times < phone.end)] = 1
    return active


class CorpusGenerator:
    """Makes the examples of one corpus; picklable, so worker processes rebuild its pools from the seed."""

    def __init__(self, preset: CorpusPreset, seed: int = 0):
        self.preset = preset
        self.seed = seed
        self._pools: dict = {}

    def _speakers(self, pool: str) -> list[Speaker]:
        key = ("speakers", pool)
        if key not in self._pools:
            size = self.preset.train_speakers if pool == "train" else None
            self._pools[key] = speaker_pool(pool, self.seed, size)
        return self._pools[key]

    def _conversations(self, text_split: str) -> list[list[Turn]]:
        key = ("text", text_split)
        if key not in self._pools:
            self._pools[key] = conversation_pool(text_split)
        return self._pools[key]

    def _random_turn(self, rng: np.random.Generator, text_split: str, language: str | None = None):
        conversations = self._conversations(text_split)
        if language is not None:
            conversations = [c for c in conversations if c[0].language == language] or conversations
        turns = conversations[rng.integers(len(conversations))]
        return turns, int(rng.integers(len(turns)))

    def _draw_speech(self, rng, text_split: str, speaker: Speaker, min_seconds: float, max_seconds: float):
        """A turn (continued by the next ones) that lasts at least half of ``min_seconds``: a conversation that
        ends too soon (a one-word answer) is replaced by another draw."""
        for _ in range(MAX_TEXT_DRAWS):
            turns, position = self._random_turn(rng, text_split, speaker.language)
            utterance = _speak_turns(turns, position, speaker, min_seconds, max_seconds)
            if utterance.duration >= 0.5 * min_seconds:
                break
        return turns, position, utterance

    def example(self, split: str, index: int) -> dict:
        """Example ``index`` of ``split``, as a dict of the columns of :func:`corpus_features`."""
        spec = SPLITS[split]
        rng = np.random.default_rng([self.seed, zlib.crc32(split.encode()), index])
        clip = self.preset.clip_seconds
        clip_samples = int(round(clip * SAMPLING_RATE))
        num_frames = int(round(clip * FPS))
        speakers = self._speakers(spec.speaker_pool)
        if spec.speaker_pool == "unseen_lang":
            # the languages take turns, so that even a few examples hold every one of them
            language = UNSEEN_LANGUAGES[index % len(UNSEEN_LANGUAGES)]
            speaking = [i for i, speaker in enumerate(speakers) if speaker.language == language]
            first = speaking[rng.integers(len(speaking))]
            others = [i for i in range(len(speakers)) if i != first]
            chosen = [first] + [others[i] for i in rng.choice(len(others), size=spec.num_interferers, replace=False)]
        else:
            chosen = rng.choice(len(speakers), size=1 + spec.num_interferers, replace=False)
        target_speaker, interferer_speakers = speakers[chosen[0]], [speakers[i] for i in chosen[1:]]

        if spec.scenario == "switch":
            # the target speaks for 30-60% of the clip at its start or its end
            span = clip * rng.uniform(0.3, 0.6)
            turns, position, utterance = self._draw_speech(rng, spec.text_split, target_speaker, 0.5 * span, span)
            length = min(utterance.duration, span)
            at_start = bool(rng.integers(2))
            onset = rng.uniform(0.0, 0.2) if at_start else clip - length - rng.uniform(0.0, 0.2)
            target = _place(utterance, target_speaker, clip, span, max(onset, 0.0))
        else:
            budget = clip - 0.05
            turns, position, utterance = self._draw_speech(rng, spec.text_split, target_speaker, 0.7 * clip, budget)
            onset = rng.uniform(0.0, max(0.0, min(MAX_ONSET_SECONDS, budget - utterance.duration)))
            target = _place(utterance, target_speaker, clip, budget - onset, onset)

        interferers = []
        for speaker in interferer_speakers:
            _, _, speech = self._draw_speech(rng, spec.text_split, speaker, clip, clip)
            other_onset = rng.uniform(0.0, max(0.0, min(MAX_ONSET_SECONDS, clip - speech.duration)))
            interferers.append(_place(speech, speaker, clip, clip - other_onset, other_onset).waveform)

        target_wave = target.waveform * (10 ** (TARGET_LEVEL_DBFS / 20) / np.sqrt(np.mean(target.waveform**2) + 1e-12))
        sirs = rng.uniform(*SIR_RANGE_DB, size=len(interferers))
        noise_type, snr, noise = "none", float("nan"), np.zeros(0, dtype=np.float32)
        if spec.scenario == "noisy":
            noise_type, snr = self._noise_condition(rng, split, index)
            noise = self._noise(rng, noise_type, spec.text_split, clip_samples)
            target_wave, mixture, (noise,) = mix_at_sirs(target_wave, [noise], [snr])
            scaled = []
        else:
            target_wave, mixture, scaled = mix_at_sirs(target_wave, interferers, sirs)

        tracks = articulation_tracks(target.phones, clip)
        lips = render_mouth(tracks, num_frames, FPS, self.preset.roi_size, target_speaker, ClipNuisance.draw(rng), rng)
        impairment, ratio = "none", 0.0
        if spec.scenario == "impaired":
            impairment = IMPAIRMENT_TYPES[index % len(IMPAIRMENT_TYPES)]
            ratio = TEST_RATIOS[(index // len(IMPAIRMENT_TYPES)) % len(TEST_RATIOS)]
            lips, _ = impair_lips(lips, impairment, ratio, rng)

        return {
            "mixture": mixture.astype(np.float32)[:clip_samples],
            "target": target_wave.astype(np.float32),
            "interferers": [wave.astype(np.float32) for wave in scaled],
            "sampling_rate": SAMPLING_RATE,
            "lips": lips,
            "fps": FPS,
            "transcript": target.transcript,
            "previous_turn": turns[position].previous_turn,
            "language": target_speaker.language,
            "domain": turns[position].domain,
            "target_speaker": target_speaker.speaker_id,
            "interferer_speakers": [speaker.speaker_id for speaker in interferer_speakers],
            "sir_db": [float(sir) for sir in sirs],
            "target_activity": frame_activity(target.phones, num_frames, FPS),
            "word_timings": [{"word": w, "start": s, "end": e} for w, s, e in target.words],
            "phoneme_timings": [{"phoneme": p.symbol, "start": p.start, "end": p.end} for p in target.phones],
            "impairment": impairment,
            "impaired_ratio": float(ratio),
            "noise": noise.astype(np.float32),
            "noise_type": noise_type,
            "snr_db": float(snr),
        }

    def _noise_condition(self, rng: np.random.Generator, split: str, index: int) -> tuple[str, float]:
        """(noise type, SNR in dB): the cells of the test grid in turn, else drawn at random."""
        if split.startswith("test"):
            return (
                NOISE_TYPES[index % len(NOISE_TYPES)],
                NOISY_TEST_SNRS_DB[(index // len(NOISE_TYPES)) % len(NOISY_TEST_SNRS_DB)],
            )
        return NOISE_TYPES[rng.integers(len(NOISE_TYPES))], float(rng.uniform(*NOISY_TRAIN_SNR_RANGE_DB))

    def _noise(self, rng: np.random.Generator, noise_type: str, text_split: str, samples: int) -> np.ndarray:
        """``(samples,)`` unit-RMS noise of ``noise_type`` (see processing.noise)."""
        if noise_type == "coloured":
            return coloured_noise(rng, samples, rng.uniform(*EXPONENT_RANGE))
        if noise_type == "nonstationary":
            return nonstationary_noise(rng, samples, SAMPLING_RATE)
        # babble: several talkers of the babble pool, which no split draws its targets or interferers from,
        # each at its own level within 6 dB, with its own onset
        pool = self._speakers("babble")
        talkers = rng.choice(len(pool), size=int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1)), replace=False)
        clip = samples / SAMPLING_RATE
        babble = np.zeros(samples, dtype=np.float64)
        for talker in talkers:
            _, _, speech = self._draw_speech(rng, text_split, pool[talker], clip, clip)
            onset = rng.uniform(0.0, max(0.0, min(MAX_ONSET_SECONDS, clip - speech.duration)))
            voice = _place(speech, pool[talker], clip, clip - onset, onset).waveform
            babble += unit_rms(voice) * 10 ** (rng.uniform(-6.0, 0.0) / 20)
        return unit_rms(babble)


def _generate_examples(shards):
    """`datasets.Dataset.from_generator` entry point: ``shards`` is a list of (generator, split, indices)."""
    import torch

    # each worker is one process on one core; torch's own threads would oversubscribe them
    torch.set_num_threads(1)
    for generator, split, indices in shards:
        for index in indices:
            yield generator.example(split, index)


def generate_corpus(
    out_dir: str,
    preset: str = "default",
    seed: int = 0,
    num_workers: int | None = None,
    splits: list[str] | None = None,
    overwrite: bool = False,
    log=print,
):
    """Generate the corpus as a `datasets.DatasetDict` saved at ``out_dir`` (load it with `load_from_disk`).

    Returns:
        A dict with generation statistics: examples and seconds per split, utterances per second.
    """
    from datasets import Dataset

    if preset not in CORPUS_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(CORPUS_PRESETS)}")
    splits = list(splits or SPLITS)
    unknown = [split for split in splits if split not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; choose from {list(SPLITS)}")
    if os.path.exists(os.path.join(out_dir, "dataset_dict.json")):
        if not overwrite:
            raise FileExistsError(f"{out_dir} already holds a corpus; pass --overwrite to replace it")
        shutil.rmtree(out_dir)
    num_workers = max(1, num_workers or os.cpu_count() or 1)
    corpus_preset = CORPUS_PRESETS[preset]
    generator = CorpusGenerator(corpus_preset, seed)
    settings = {"preset": asdict(corpus_preset), "seed": seed, "splits": splits}
    staging = out_dir.rstrip("/") + ".partial"
    os.makedirs(staging, exist_ok=True)
    settings_path = os.path.join(staging, "corpus_settings.json")
    if os.path.exists(settings_path):
        with open(settings_path) as stream:
            if json.load(stream) != settings:
                raise ValueError(
                    f"{staging} holds an interrupted run with other settings; delete it or use the same arguments"
                )
    else:
        with open(settings_path, "w") as stream:
            json.dump(settings, stream, indent=2)

    stats = {"preset": preset, "seed": seed, "num_workers": num_workers, "splits": {}}
    features = corpus_features(corpus_preset.roi_size)
    for split in splits:
        final = os.path.join(staging, split)
        size = corpus_preset.split_sizes[split]
        if os.path.exists(final):
            log(f"{split}: already generated, kept")
            continue
        started = time.perf_counter()
        # contiguous shards: datasets concatenates them in order, so rows stay in index order
        bounds = np.linspace(0, size, min(size, 4 * num_workers) + 1).round().astype(int)
        shards = [(generator, split, list(range(a, b))) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        dataset = Dataset.from_generator(
            _generate_examples,
            features=features,
            gen_kwargs={"shards": shards},
            num_proc=min(num_workers, len(shards)) if num_workers > 1 else None,
            cache_dir=os.path.join(staging, ".cache"),
            split=split,
        )
        dataset.save_to_disk(final + ".tmp")
        os.replace(final + ".tmp", final)
        seconds = time.perf_counter() - started
        utterances = size * (1 + SPLITS[split].num_interferers)
        stats["splits"][split] = {"examples": size, "utterances": utterances, "seconds": seconds}
        log(f"{split}: {size} examples in {seconds:.1f} s")

    shutil.rmtree(os.path.join(staging, ".cache"), ignore_errors=True)
    with open(os.path.join(staging, "dataset_dict.json"), "w") as stream:
        json.dump({"splits": splits}, stream)
    os.replace(staging, out_dir)
    generated = list(stats["splits"].values())
    if generated:
        seconds = sum(entry["seconds"] for entry in generated)
        stats["examples_per_second"] = sum(entry["examples"] for entry in generated) / seconds
        # an utterance is one synthesised voice: the target (with its lips) or an interferer
        stats["utterances_per_second"] = sum(entry["utterances"] for entry in generated) / seconds
    return stats
