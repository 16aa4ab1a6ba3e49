"""Extraction from recordings of any length at bounded memory: chunks with overlap, joined by cross-fades.

The recording is cut into chunks of ``chunk_seconds`` that overlap their neighbours by ``overlap_seconds``; chunk
starts fall on video frames, so each chunk's lips are exactly its frames. Neighbouring estimates are joined by a
raised-cosine cross-fade over their overlap, and every finished stretch of output goes to ``sink`` as soon as no
later chunk touches it. Each chunk's estimate is first brought to the
mixture's scale (see :func:`processing.output_scaling.scale_to_mixture`). Only one chunk's estimate and one overlap are held at a time, so the memory used beyond
the inputs does not grow with the recording; inputs may be ``np.memmap`` arrays (e.g. ``np.load(path,
mmap_mode="r")``) so that they are not held either.

The models normalise over a whole input (global layer norm) and their inter-chunk RNNs see the whole input, so a
chunked estimate is not bit-identical to a whole-file one; docs/benchmarks.md gives the measured difference for the
defaults.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from processing.output_scaling import scale_to_mixture

DEFAULT_CHUNK_SECONDS = 4.0  # measured: docs/benchmarks.md, "Chunked extraction"
DEFAULT_OVERLAP_SECONDS = 1.0


def chunk_frames(total_frames: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """``[(first_frame, end_frame)]`` covering ``total_frames``: chunks of ``chunk`` frames, each overlapping the next
    by at least ``overlap`` (the last one ends at the end, so it may overlap more)."""
    if total_frames <= chunk:
        return [(0, total_frames)]
    hop = chunk - overlap
    starts = list(range(0, total_frames - chunk, hop)) + [total_frames - chunk]
    return [(start, start + chunk) for start in starts]


def check_chunking(chunk_seconds: float, overlap_seconds: float) -> None:
    """Refuses a chunking that cannot be joined: a chunk of no length, or an overlap outside [0, half a chunk]."""
    if chunk_seconds <= 0:
        raise ValueError(f"chunk_seconds={chunk_seconds}: a chunk must last more than 0 s")
    if overlap_seconds < 0 or overlap_seconds > chunk_seconds / 2:
        raise ValueError(
            f"chunk_seconds={chunk_seconds} and overlap_seconds={overlap_seconds}: the overlap must be at least 0 and "
            f"at most half a chunk"
        )


def _cross_fade(length: int) -> np.ndarray:
    """Weights of the incoming chunk over an overlap of ``length`` samples (raised cosine, 0 to 1)."""
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(length) + 0.5) / length)).astype(np.float32)


@torch.no_grad()
def extract_in_chunks(
    model,
    processor,
    mixture: np.ndarray,
    lips: np.ndarray | None = None,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
    sink: Callable[[np.ndarray], None] | None = None,
) -> np.ndarray | None:
    """The target's speech in ``mixture`` (``(samples,)`` at the model's rate), chunk by chunk.

    Args:
        model: an extraction model (``UsevForTargetSpeechExtraction``, ...), or an audio-only enhancement model.
        processor: its ``EleganceProcessor``.
        lips: ``(frames, height, width)`` mouth ROIs at the model's frame rate covering the mixture; None for an
            audio-only model.
        chunk_seconds, overlap_seconds: chunk length and the least overlap between neighbours
            (``overlap_seconds`` at most half of ``chunk_seconds``).
        sink: called with each finished stretch of output, in order (e.g. a ``soundfile.SoundFile.write``);
            when None, the whole estimate is returned.

    Returns:
        ``(samples,)`` float32, or None when ``sink`` is given.
    """
    sampling_rate = processor.audio_feature_extractor.sampling_rate
    fps = processor.lip_feature_extractor.fps
    samples_per_frame = sampling_rate // fps
    if sampling_rate % fps:
        raise ValueError(
            f"chunked extraction needs a whole number of samples per video frame, got {sampling_rate}/{fps}"
        )
    check_chunking(chunk_seconds, overlap_seconds)
    samples = len(mixture)
    total_frames = -(-samples // samples_per_frame)
    wants_lips = getattr(model.config, "lip_input", None) is not None
    if wants_lips and lips is None:
        raise ValueError("this model extracts a target by its lips: pass lips= (frames, height, width)")
    if wants_lips and len(lips) < total_frames - 1:
        raise ValueError(
            f"the lips cover {len(lips)} frames ({len(lips) / fps:.2f} s) but the mixture lasts {samples / sampling_rate:.2f} s "
            f"({total_frames} frames at {fps} fps); give lips for the whole mixture"
        )
    chunk = max(1, int(round(chunk_seconds * fps)))
    overlap = int(round(overlap_seconds * fps))
    pieces = [] if sink is None else None
    emit = pieces.append if sink is None else sink
    pending = np.zeros(0, dtype=np.float32)  # the previous estimate past the current chunk's start
    spans = chunk_frames(total_frames, chunk, overlap)
    for number, (first, end) in enumerate(spans):
        start_sample, end_sample = first * samples_per_frame, min(end * samples_per_frame, samples)
        audio = np.asarray(mixture[start_sample:end_sample], dtype=np.float32)
        clip = None
        if wants_lips:
            # the last chunk may reach a frame past the lips (its audio rounds up): the last frame is held
            clip = np.asarray(lips[first : min(end, len(lips))])
            clip = np.pad(clip, ((0, end - first - len(clip)), (0, 0), (0, 0)), mode="edge")
        inputs = processor(audio=audio, videos=[clip] if wants_lips else None, return_tensors="pt")
        names = [name for name in processor.model_input_names if name in inputs]
        estimate = model(**{name: inputs[name].to(model.device) for name in names}).waveform
        estimate = scale_to_mixture(estimate[0, : len(audio)].float().cpu().numpy(), audio)
        faded = len(pending)
        if faded:
            weights = _cross_fade(faded)
            estimate[:faded] = pending * (1 - weights) + estimate[:faded] * weights
        if number + 1 < len(spans):
            keep_from = spans[number + 1][0] * samples_per_frame - start_sample
            emit(estimate[:keep_from])
            pending = estimate[keep_from:].copy()
        else:
            emit(estimate)
    if sink is None:
        return np.concatenate(pieces)
    return None
