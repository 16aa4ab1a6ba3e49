"""Two-talker videos built from the real GRID clips of ../shared/data/grid (kept out of the package).

Two clips of different speakers stand side by side (frames concatenated horizontally, left then right) and their
audio is mixed at 0 dB (each scaled to the same RMS); the audio track may start later than the video.
"""

from __future__ import annotations

import os

import numpy as np

from processing.media_decoding import iter_frames, read_audio
from processing.media_writing import write_video

# the clips stay outside the repository: beside it (../shared/data/grid), or wherever ELEGANCE_GRID_DIR says
GRID = os.environ.get(
    "ELEGANCE_GRID_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "grid")
)


def require_grid() -> None:
    """Fail (not skip) when the GRID clips are missing: the real-video tests are part of `make test`."""
    if not os.path.isfile(os.path.join(GRID, LEFT_CLIP)):
        raise FileNotFoundError(
            f"the real GRID clips are not at {os.path.abspath(GRID)}: clone the repository beside shared/ "
            f"(../shared/data/grid) or set ELEGANCE_GRID_DIR to a folder holding {LEFT_CLIP} and {RIGHT_CLIP}"
        )


LEFT_CLIP, RIGHT_CLIP = "bbaf2n.mpg", "id2_vcd_swwp2s.mpg"  # speakers s1 and s2
SAMPLING_RATE, FPS = 16000, 25


def grid_clip(name: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """A GRID clip's ``(audio (samples,) at 16 kHz, RGB frames at 25 fps)``."""
    require_grid()
    path = os.path.join(GRID, name)
    audio, timeline = read_audio(path, SAMPLING_RATE, FPS)
    return audio, list(iter_frames(path, timeline, "rgb24"))


def two_talker_video(path: str, audio_delay_seconds: float = 0.0, repeats: int = 1) -> dict:
    """Write the side-by-side video to ``path``; returns each talker's clean audio (RMS-matched) and the mixture."""
    (left_audio, left_frames), (right_audio, right_frames) = grid_clip(LEFT_CLIP), grid_clip(RIGHT_CLIP)
    samples = min(len(left_audio), len(right_audio))
    frames = min(len(left_frames), len(right_frames))
    left, right = left_audio[:samples], right_audio[:samples]
    right = right * (np.sqrt(np.mean(left**2)) / np.sqrt(np.mean(right**2)))
    left, right = np.tile(left, repeats), np.tile(right, repeats)
    mixture = 0.5 * (left + right)
    pictures = [np.concatenate([left_frames[k], right_frames[k]], axis=1) for k in range(frames)] * repeats
    write_video(path, pictures, FPS, [("mixture", mixture)], SAMPLING_RATE, audio_offset_seconds=audio_delay_seconds)
    return {"left": 0.5 * left, "right": 0.5 * right, "mixture": mixture}


def crossing_faces(frames: int = 75, width: int = 720) -> list[np.ndarray]:
    """Two real faces (GRID s1 and s2, 200 x 248 patches around each face) crossing a grey canvas: s1 from the
    left to the right edge in front, s2 from the right to the left edge behind it (hidden while they overlap)."""
    _, left_frames = grid_clip(LEFT_CLIP)
    _, right_frames = grid_clip(RIGHT_CLIP)
    pictures = []
    for k in range(frames):
        canvas = np.full((288, width, 3), 128, np.uint8)
        travelled = k * (width - 220) / (frames - 1)
        front, behind = int(20 + travelled), int(width - 200 - travelled)
        canvas[40:288, behind : behind + 200] = right_frames[k % len(right_frames)][40:288, 82:282]
        canvas[40:288, front : front + 200] = left_frames[k % len(left_frames)][40:288, 55:255]
        pictures.append(canvas)
    return pictures
