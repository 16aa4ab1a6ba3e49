"""Each visible speaker's voice from a video file: decode, track faces, crop mouths, extract, write.

    from pipelines.video_extraction import extract_from_video, write_extraction
    result = extract_from_video("talk.mp4", model, processor)       # one FaceExtraction per tracked face
    paths = write_extraction(result, "talk.mp4", "out/")             # WAVs, an MP4 with a track per face, PNGs

The video is read twice (tracking, then cropping with the smoothed geometry) and once more to write the MP4, so
that no more than one frame is held at a time; what grows with the duration is the audio, the landmarks and one
mouth clip per face at the model's lip size (about 200 MB per face for an hour at 48 x 48 pixels).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from processing.face_tracking import FaceTracker
from processing.media_decoding import MediaTimeline, iter_frames, read_audio
from processing.media_writing import atomic_path, write_contact_sheet, write_video, write_wav
from processing.mouth_crops import crop_mouths, mouth_crop_geometry

from .chunked_extraction import DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP_SECONDS, extract_in_chunks

DEFAULT_MIN_COVERAGE = 0.5


@dataclass
class FaceExtraction:
    """One tracked face: its voice, where it was, and the mouth clip the model read."""

    face: int  # the track's number, in order of first appearance
    waveform: np.ndarray  # (samples,) float32 at the model's rate, on the video's timeline
    coverage: float  # share of the video's frames where the face was found
    mouth_rois: np.ndarray  # (frames, size, size) uint8
    mean_center: tuple[float, float]  # mean (x, y) pixel position of the mouth


@dataclass
class VideoExtraction:
    faces: list[FaceExtraction]
    mixture: np.ndarray  # the video's audio, mono at the model's rate
    timeline: MediaTimeline
    stage_seconds: dict[str, float] = field(default_factory=dict)  # decode, detection, landmarks, crops, extraction


class _TimedFrames:
    """Frames of a video, with the time spent decoding them added to ``stage_seconds['decode']``."""

    def __init__(self, path: str, timeline: MediaTimeline, stage_seconds: dict, pixel_format: str = "gray"):
        self.frames = iter_frames(path, timeline, pixel_format)
        self.stage_seconds = stage_seconds

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            started = time.perf_counter()
            frame = next(self.frames, None)
            self.stage_seconds["decode"] += time.perf_counter() - started
            if frame is None:
                return
            yield frame


def _parse_faces(faces) -> list[int] | None:
    if faces is None or faces == "all":
        return None
    if isinstance(faces, str):
        try:
            return [int(face) for face in faces.split(",") if face.strip()]
        except ValueError:
            raise ValueError(f"faces={faces!r}: give 'all' or face numbers separated by commas, e.g. '0,2'") from None
    return [int(face) for face in faces]


def _choose_tracks(tracks, frames: int, fps: float, faces, min_coverage: float, path: str):
    if not tracks:
        raise ValueError(
            f"no face was found in {path}: the detector (dlib's frontal face detector) needs frontal faces at least "
            f"about 80 pixels tall; check that the speakers face the camera"
        )
    coverage = {track.track_id: track.coverage(frames) for track in tracks}

    def describe(track_id):
        return f"face {track_id} for {100 * coverage[track_id]:.0f}% ({coverage[track_id] * frames / fps:.1f} s)"

    wanted = _parse_faces(faces)
    if wanted is None:
        chosen = [track for track in tracks if coverage[track.track_id] >= min_coverage]
        if not chosen:
            raise ValueError(
                f"every face in {path} is visible for too little of the clip ({frames / fps:.1f} s): "
                + ", ".join(describe(track.track_id) for track in tracks)
                + f"; at least {100 * min_coverage:.0f}% is needed (lower min_coverage to extract them anyway)"
            )
        return chosen
    by_id = {track.track_id: track for track in tracks}
    for face in wanted:
        if face not in by_id:
            raise ValueError(f"face {face} was asked for, but {path} has {len(tracks)} face tracks: {sorted(by_id)}")
        if coverage[face] < min_coverage:
            raise ValueError(
                f"{describe(face)} of the {frames / fps:.1f} s clip is visible for too little of it; at least "
                f"{100 * min_coverage:.0f}% is needed (lower min_coverage to extract it anyway)"
            )
    return [by_id[face] for face in wanted]


def extract_from_video(
    path: str,
    model,
    processor,
    faces="all",
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
    detect_every: int = 5,
) -> VideoExtraction:
    """Every tracked face's voice in the video at ``path``.

    Args:
        model, processor: an audio-visual extraction model and its ``EleganceProcessor``.
        faces: ``"all"`` (every face visible for at least ``min_coverage`` of the clip), or face numbers (a list
            or ``"0,2"``) in order of first appearance.
        min_coverage: least share of the clip's frames where a face must be found.
        chunk_seconds, overlap_seconds: see :func:`pipelines.chunked_extraction.extract_in_chunks`.
        detect_every: run the face detector on every ``detect_every``-th frame (landmarks follow in between).
    """
    if getattr(model.config, "lip_input", None) is None:
        raise ValueError(
            f"{type(model).__name__} takes no lips (an audio-only enhancement model), so it cannot tell the faces of "
            f"a video apart; use an audio-visual extraction model (e.g. pretrained/usev-tiny), or run this one on "
            f"the audio with pipeline('target-speech-extraction', model=...)(audio)"
        )
    sampling_rate = processor.audio_feature_extractor.sampling_rate
    fps = processor.lip_feature_extractor.fps
    roi_size = processor.lip_feature_extractor.size
    stage_seconds = dict.fromkeys(("decode", "detection", "landmarks", "descriptors", "crops", "extraction"), 0.0)

    started = time.perf_counter()
    mixture, timeline = read_audio(path, sampling_rate, fps)
    stage_seconds["decode"] += time.perf_counter() - started

    tracker = FaceTracker(fps=fps, detect_every=detect_every)
    for index, gray in enumerate(_TimedFrames(path, timeline, stage_seconds)):
        tracker.update(index, gray)
    for stage, seconds in tracker.seconds.items():
        stage_seconds[stage] += seconds
    chosen = _choose_tracks(tracker.tracks(), timeline.frames, fps, faces, min_coverage, path)

    geometries = [mouth_crop_geometry(track.landmarks, timeline.frames) for track in chosen]
    rois = np.zeros((len(chosen), timeline.frames, roi_size, roi_size), dtype=np.uint8)
    for index, gray in enumerate(_TimedFrames(path, timeline, stage_seconds)):
        started = time.perf_counter()
        rois[:, index] = crop_mouths(gray, geometries, index, roi_size)
        stage_seconds["crops"] += time.perf_counter() - started

    results = []
    for track, geometry, face_rois in zip(chosen, geometries, rois):
        started = time.perf_counter()
        waveform = extract_in_chunks(
            model, processor, mixture, face_rois, chunk_seconds=chunk_seconds, overlap_seconds=overlap_seconds
        )
        stage_seconds["extraction"] += time.perf_counter() - started
        center = geometry.centers.mean(0)
        results.append(
            FaceExtraction(
                face=track.track_id,
                waveform=waveform,
                coverage=track.coverage(timeline.frames),
                mouth_rois=face_rois,
                mean_center=(float(center[0]), float(center[1])),
            )
        )
    return VideoExtraction(faces=results, mixture=mixture, timeline=timeline, stage_seconds=stage_seconds)


def write_extraction(result: VideoExtraction, video_path: str, out_dir: str, write_mp4: bool = True) -> dict:
    """Write ``face_N.wav``, ``face_N_mouths.png``, ``STEM_faces.mp4`` (the video with the original audio and one
    track per face) and ``summary.json`` into ``out_dir``; returns the summary (paths, coverage, stage times)."""
    os.makedirs(out_dir, exist_ok=True)
    rate = result.timeline.sampling_rate
    started = time.perf_counter()
    summary = {"video": os.path.abspath(video_path), "duration_seconds": result.timeline.duration_seconds, "faces": []}
    for face in result.faces:
        wav = os.path.join(out_dir, f"face_{face.face}.wav")
        sheet = os.path.join(out_dir, f"face_{face.face}_mouths.png")
        write_wav(wav, face.waveform, rate)
        write_contact_sheet(sheet, face.mouth_rois)
        summary["faces"].append(
            {
                "face": face.face,
                "wav": wav,
                "mouths": sheet,
                "coverage": face.coverage,
                "mouth_center": face.mean_center,
            }
        )
    if write_mp4:
        stem = os.path.splitext(os.path.basename(video_path))[0]
        summary["mp4"] = os.path.join(out_dir, f"{stem}_faces.mp4")
        tracks = [("original", result.mixture)] + [(f"face {face.face}", face.waveform) for face in result.faces]
        frames = iter_frames(video_path, result.timeline, "rgb24")
        write_video(summary["mp4"], frames, result.timeline.fps, tracks, rate)
    result.stage_seconds["writing"] = time.perf_counter() - started
    summary["stage_seconds"] = result.stage_seconds
    with atomic_path(os.path.join(out_dir, "summary.json")) as partial, open(partial, "w") as stream:
        json.dump(summary, stream, indent=2)
    return summary
