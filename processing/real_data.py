"""Real data (VoxCeleb2, LRS3) through the USEV/MuSE mixture-list CSV, mixed on the fly.

A list row is ``partition, [split, speaker, clip, dB] x C, min_len``: the first source is the target, the others
interferers, each scaled to ``dB`` relative level after RMS normalisation (so the target-to-interferer ratio of
source ``i`` is ``dB_target - dB_i``); every signal is cut to ``min_len`` samples. Files are found as

- audio: ``{audio_root}/{split}/{speaker}/{clip}.wav`` (16 kHz mono)
- lips: ``{visual_root}/{split}/{speaker}/{clip}.npy``: uint8 ROI frames ``(frames, H, W)``, or lip embeddings
  ``(frames, 512)``.

Examples come out in the schema of the embedded corpus (``lips`` or ``lip_embeds``; text columns are empty,
and ``target_activity`` is estimated from the target's frame energy).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np

from .corpus_generation import FPS, SAMPLING_RATE

ACTIVITY_THRESHOLD_DB = -40.0  # a video frame is active when the target's energy is within this of its loudest frame


@dataclass(frozen=True)
class Source:
    split: str
    speaker: str
    clip: str
    level_db: float


@dataclass(frozen=True)
class MixtureEntry:
    partition: str
    sources: tuple  # tuple[Source, ...], target first
    min_length: int  # samples


def read_mixture_list(path: str, partition: str | None = None) -> list[MixtureEntry]:
    """Parse a USEV/MuSE mixture list; keep only rows of ``partition`` when given."""
    entries = []
    with open(path, newline="") as stream:
        for line_number, row in enumerate(csv.reader(stream), start=1):
            row = [cell.strip() for cell in row if cell.strip() != ""]
            if not row:
                continue
            if (len(row) - 2) % 4 != 0 or len(row) < 10:
                raise ValueError(
                    f"{path}:{line_number}: expected 'partition, [split, speaker, clip, dB] x C, min_len' with C >= 2, "
                    f"got {len(row)} fields"
                )
            sources = tuple(
                Source(row[i], row[i + 1], row[i + 2], float(row[i + 3])) for i in range(1, len(row) - 1, 4)
            )
            entry = MixtureEntry(row[0], sources, int(float(row[-1])))
            if partition is None or entry.partition == partition:
                entries.append(entry)
    return entries


def _rms(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(signal.astype(np.float64) ** 2)) + 1e-12)


class MixtureListDataset:
    """A map-style dataset (works with `torch.utils.data.DataLoader`) over a mixture list.

    Args:
        mixture_list: path of the CSV.
        audio_root: folder of ``{split}/{speaker}/{clip}.wav``.
        visual_root: folder of ``{split}/{speaker}/{clip}.npy``.
        partition: ``train``, ``val`` or ``test`` rows only (default: all).
    """

    def __init__(self, mixture_list: str, audio_root: str, visual_root: str, partition: str | None = None):
        self.entries = read_mixture_list(mixture_list, partition)
        if not self.entries:
            raise ValueError(f"{mixture_list} has no rows" + (f" for partition {partition!r}" if partition else ""))
        self.audio_root = audio_root
        self.visual_root = visual_root

    def __len__(self) -> int:
        return len(self.entries)

    def _audio(self, source: Source) -> np.ndarray:
        import soundfile

        path = os.path.join(self.audio_root, source.split, source.speaker, source.clip + ".wav")
        if not os.path.exists(path):
            raise FileNotFoundError(f"audio for {source.speaker}/{source.clip} not found at {path}")
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        if rate != SAMPLING_RATE:
            raise ValueError(
                f"{path} is {rate} Hz; the mixture lists assume {SAMPLING_RATE} Hz audio, resample it first"
            )
        return audio.mean(axis=1)

    def _lips(self, source: Source) -> np.ndarray:
        path = os.path.join(self.visual_root, source.split, source.speaker, source.clip + ".npy")
        if not os.path.exists(path):
            raise FileNotFoundError(f"lip clip for {source.speaker}/{source.clip} not found at {path}")
        return np.load(path)

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        length = entry.min_length
        signals = []
        for source in entry.sources:
            audio = self._audio(source)
            if len(audio) < length:
                raise ValueError(
                    f"{source.speaker}/{source.clip} has {len(audio)} samples, fewer than min_len={length}"
                )
            audio = audio[:length]
            signals.append(audio / _rms(audio) * 10 ** (source.level_db / 20))
        target, interferers = signals[0], signals[1:]
        mixture = target + sum(interferers)
        gain = min(1.0, 0.95 / (float(np.abs(mixture).max()) + 1e-12))
        num_frames = int(round(length / SAMPLING_RATE * FPS))
        visual = self._lips(entry.sources[0])
        if len(visual) < num_frames:
            raise ValueError(
                f"lip clip of {entry.sources[0].clip} has {len(visual)} frames, the audio needs {num_frames}"
            )
        visual = visual[:num_frames]
        frame_energy = np.array(
            [np.sum(chunk**2) for chunk in np.array_split(target[: num_frames * (length // num_frames)], num_frames)]
        )
        activity = (
            10 * np.log10(frame_energy + 1e-12) > 10 * np.log10(frame_energy.max() + 1e-12) + ACTIVITY_THRESHOLD_DB
        )
        target_source = entry.sources[0]
        example = {
            "mixture": (mixture * gain).astype(np.float32),
            "target": (target * gain).astype(np.float32),
            "interferers": [(signal * gain).astype(np.float32) for signal in interferers],
            "sampling_rate": SAMPLING_RATE,
            "fps": FPS,
            "transcript": "",
            "previous_turn": "",
            "language": "",
            "target_speaker": target_source.speaker,
            "interferer_speakers": [source.speaker for source in entry.sources[1:]],
            "sir_db": [target_source.level_db - source.level_db for source in entry.sources[1:]],
            "target_activity": activity.astype(np.uint8),
        }
        # a 2-D array of 512 columns holds embeddings; ROI clips are 3-D
        example["lip_embeds" if visual.ndim == 2 else "lips"] = visual
        return example
