"""Impaired visual cues, as in the ELEGANCE authors' impaired-visual protocol.

A contiguous run of ``round(ratio * frames)`` frames starting at a random frame is impaired in one of three ways:
``full_mask`` (the frames are blanked), ``occlusion`` (a grey block covers part of the mouth) or
``low_resolution`` (the frames are downsampled by 4 and upsampled back). Training draws the ratio from
U(0, 0.8) on the fly; ``test_impaired`` uses the fixed grid 0, 0.2, ..., 1.0.
"""

from __future__ import annotations

import numpy as np

IMPAIRMENT_TYPES = ("full_mask", "occlusion", "low_resolution")
TEST_RATIOS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
TRAINING_MAX_RATIO = 0.8
LOW_RESOLUTION_FACTOR = 4


def impaired_span(num_frames: int, ratio: float, rng: np.random.Generator) -> tuple[int, int]:
    """``(start, stop)`` frame indices of the impaired run."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"impaired ratio must lie in [0, 1], got {ratio}")
    length = int(round(ratio * num_frames))
    start = int(rng.integers(0, num_frames - length + 1))
    return start, start + length


def impair_lips(lips: np.ndarray, kind: str, ratio: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Impair a uint8 lip clip ``(frames, height, width)``.

    Returns:
        The impaired clip (a copy) and a 0/1 mask ``(frames,)`` of the impaired frames.
    """
    if kind not in IMPAIRMENT_TYPES:
        raise ValueError(f"unknown impairment {kind!r}; choose one of {IMPAIRMENT_TYPES}")
    frames, height, width = lips.shape
    start, stop = impaired_span(frames, ratio, rng)
    impaired = lips.copy()
    mask = np.zeros(frames, dtype=np.uint8)
    mask[start:stop] = 1
    if stop == start:
        return impaired, mask
    segment = impaired[start:stop]
    if kind == "full_mask":
        segment[:] = 0
    elif kind == "occlusion":
        block_h, block_w = (
            int(rng.integers(height // 3, height // 2 + 1)),
            int(rng.integers(width // 3, width // 2 + 1)),
        )
        top, left = int(rng.integers(height // 4, height - block_h + 1)), int(rng.integers(0, width - block_w + 1))
        segment[:, top : top + block_h, left : left + block_w] = int(rng.integers(60, 200))
    else:
        factor = LOW_RESOLUTION_FACTOR
        small_h, small_w = max(height // factor, 1), max(width // factor, 1)
        crop = segment[:, : small_h * factor, : small_w * factor].astype(np.float32)
        pooled = crop.reshape(len(segment), small_h, factor, small_w, factor).mean(axis=(2, 4))
        upsampled = np.repeat(np.repeat(pooled, factor, axis=1), factor, axis=2)
        segment[:, : small_h * factor, : small_w * factor] = np.round(upsampled).astype(np.uint8)
    impaired[start:stop] = segment
    return impaired, mask
