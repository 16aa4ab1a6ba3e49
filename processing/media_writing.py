"""Writing what extraction from a video produces: WAV files, an MP4 with one audio track per face, contact sheets.

Every file is written under a temporary name in its folder and moved into place when complete, so an interrupted
run never leaves a truncated file under the final name.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np


@contextmanager
def atomic_path(path: str):
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block finishes."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    stem, extension = os.path.splitext(os.path.basename(path))
    partial = os.path.join(folder, f".{stem}.partial{extension}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def write_wav(path: str, waveform: np.ndarray, sampling_rate: int) -> None:
    """A mono 16-bit PCM WAV (clipped to [-1, 1])."""
    import soundfile

    with atomic_path(path) as partial:
        soundfile.write(partial, np.clip(np.asarray(waveform, dtype=np.float32), -1.0, 1.0), sampling_rate, "PCM_16")


def _video_encoder(av) -> str:
    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001  (PyAV raises different types across versions for a missing codec)
            continue
    raise RuntimeError("this PyAV build has neither libx264 nor mpeg4 to encode video with")


def write_video(
    path: str,
    frames: Sequence[np.ndarray] | object,
    fps: float,
    audio_tracks: Sequence[tuple[str, np.ndarray]],
    sampling_rate: int,
    audio_offset_seconds: float = 0.0,
) -> None:
    """An MP4 of ``frames`` (an iterable of ``(height, width, 3)`` uint8 RGB) at ``fps`` with one AAC track per
    ``(title, waveform)`` (``(samples,)`` mono or ``(2, samples)`` stereo); each audio track starts
    ``audio_offset_seconds`` after the first frame."""
    from fractions import Fraction

    import av

    with atomic_path(path) as partial, av.open(partial, "w", format="mp4") as container:
        rate = Fraction(fps).limit_denominator(1001)
        encoder = _video_encoder(av)
        # x264's "veryfast" preset: a third of the default's encoding time, for a preview of the tracks
        video = container.add_stream(encoder, rate=rate, options={"preset": "veryfast"} if encoder == "libx264" else {})
        video.pix_fmt = "yuv420p"
        audio_streams = []
        for title, waveform in audio_tracks:
            layout = "stereo" if np.ndim(waveform) == 2 else "mono"
            stream = container.add_stream("aac", rate=sampling_rate, layout=layout)
            stream.metadata["title"] = title  # MP4 keeps it as the track's "name" (udta)
            stream.metadata["handler_name"] = title  # and players list tracks by their handler name
            audio_streams.append(stream)
        for index, picture in enumerate(frames):
            if index == 0:
                # yuv420p needs even sides
                video.width, video.height = picture.shape[1] // 2 * 2, picture.shape[0] // 2 * 2
            picture = np.ascontiguousarray(picture[: video.height, : video.width])
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            frame.time_base = 1 / rate
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        offset = int(round(audio_offset_seconds * sampling_rate))
        block = 1024 * 16
        for stream, (_, waveform) in zip(audio_streams, audio_tracks):
            samples = np.clip(np.atleast_2d(np.asarray(waveform, dtype=np.float32)), -1.0, 1.0)  # (channels, samples)
            layout = "stereo" if len(samples) == 2 else "mono"
            for start in range(0, samples.shape[1], block):
                piece = np.ascontiguousarray(samples[:, start : start + block])
                frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout=layout)
                frame.sample_rate = sampling_rate
                frame.pts = offset + start
                frame.time_base = Fraction(1, sampling_rate)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))


def write_contact_sheet(path: str, rois: np.ndarray, tiles: int = 40, columns: int = 10) -> None:
    """A PNG grid of ``tiles`` mouth crops taken evenly over the track (``rois (frames, size, size)`` uint8),
    read left to right, top to bottom."""
    from PIL import Image

    picks = np.linspace(0, len(rois) - 1, num=min(tiles, len(rois))).round().astype(int)
    rows = math.ceil(len(picks) / columns)
    size = rois.shape[1]
    sheet = np.full((rows * (size + 2), min(columns, len(picks)) * (size + 2)), 255, dtype=np.uint8)
    for tile, frame in enumerate(picks):
        row, column = divmod(tile, columns)
        sheet[row * (size + 2) : row * (size + 2) + size, column * (size + 2) : column * (size + 2) + size] = rois[
            frame
        ]
    with atomic_path(path) as partial:
        Image.fromarray(sheet).save(partial, format="PNG")
