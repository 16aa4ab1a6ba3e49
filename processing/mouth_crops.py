"""Stabilised grayscale mouth ROIs from a face track's landmarks.

A mouth crop is a square, rotated so that the eyes are level, centred on the mouth, ``side`` pixels across. Its
side follows the face's size (the distance between the eye centres), not the mouth's width, so that an opening
or rounding mouth changes shape inside a fixed frame, as in the corpus the models learned from. The scale is set
per track so that the mouth at its median width spans ``mouth_fraction`` of the crop (0.6, the share of the
corpus's rendered mouths).

Landmarks jitter by a pixel or two from frame to frame; the centre, angle and scale are smoothed over
``smoothing_frames`` (a centred moving average), and frames where the face was not found take the geometry of
the nearest frames where it was (linear between two, held at the ends).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .face_tracking import LEFT_EYE, MOUTH, MOUTH_CORNERS, RIGHT_EYE


@dataclass(frozen=True)
class CropGeometry:
    """Per video frame: ``centers (frames, 2)`` (x, y pixels), ``angles (frames,)`` radians, ``sides (frames,)``."""

    centers: np.ndarray
    angles: np.ndarray
    sides: np.ndarray


def _fill_and_smooth(values: np.ndarray, known: np.ndarray, window: int) -> np.ndarray:
    """Interpolate ``values (frames, dims)`` over frames not ``known``, then take a centred moving average."""
    frames = np.arange(len(values))
    filled = np.stack([np.interp(frames, frames[known], values[known, dim]) for dim in range(values.shape[1])], axis=1)
    if window <= 1:
        return filled
    padded = np.pad(filled, ((window // 2, window - 1 - window // 2), (0, 0)), mode="edge")
    kernel = np.ones(window) / window
    return np.stack([np.convolve(padded[:, dim], kernel, mode="valid") for dim in range(values.shape[1])], axis=1)


def mouth_crop_geometry(
    landmarks: dict[int, np.ndarray], frames: int, mouth_fraction: float = 0.6, smoothing_frames: int = 5
) -> CropGeometry:
    """The crop of each of ``frames`` frames from a track's ``{frame: (68, 2) landmarks}``."""
    if not landmarks:
        raise ValueError("a face track without landmarks has no mouth to crop")
    known = np.zeros(frames, dtype=bool)
    raw = np.zeros((frames, 5), dtype=np.float64)  # mouth x, y, eye-line angle, eye distance, mouth width
    for index, points in landmarks.items():
        left_eye, right_eye = points[LEFT_EYE].mean(0), points[RIGHT_EYE].mean(0)
        eye_line = right_eye - left_eye
        mouth_width = np.linalg.norm(points[MOUTH_CORNERS[1]] - points[MOUTH_CORNERS[0]])
        raw[index] = (
            *points[MOUTH].mean(0),
            np.arctan2(eye_line[1], eye_line[0]),
            np.linalg.norm(eye_line),
            mouth_width,
        )
        known[index] = True
    smooth = _fill_and_smooth(raw, known, smoothing_frames)
    mouth_to_eyes = float(np.median(raw[known, 4] / np.maximum(raw[known, 3], 1e-6)))
    sides = smooth[:, 3] * mouth_to_eyes / mouth_fraction
    return CropGeometry(centers=smooth[:, :2], angles=smooth[:, 2], sides=sides)


def crop_mouths(gray: np.ndarray, geometries: list[CropGeometry], index: int, size: int) -> np.ndarray:
    """The mouth ROIs of frame ``index`` of a ``(height, width)`` uint8 frame, one per geometry:
    ``(len(geometries), size, size)`` uint8 (bilinear; pixels outside the frame are black).

    PIL's affine transform samples only the ``size x size`` output (0.1 ms a crop, against 30 ms for torch's
    ``grid_sample`` over the whole frame); output pixel ``(x, y)`` reads the frame at
    ``center + R(angle) ((x, y) - (size - 1) / 2) * side / size``.
    """
    from PIL import Image

    image = Image.fromarray(gray)
    crops = np.empty((len(geometries), size, size), dtype=np.uint8)
    middle = size / 2 - 0.5
    for row, geometry in enumerate(geometries):
        (center_x, center_y), angle, side = geometry.centers[index], geometry.angles[index], geometry.sides[index]
        cos, sin = np.cos(angle) * side / size, np.sin(angle) * side / size
        coefficients = (cos, -sin, center_x - (cos - sin) * middle, sin, cos, center_y - (sin + cos) * middle)
        crops[row] = np.asarray(image.transform((size, size), Image.AFFINE, coefficients, resample=Image.BILINEAR))
    return crops
