"""`LipVideoProcessor`: grayscale mouth-ROI clips to normalised, padded model input.

A clip is ``(frames, height, width)`` (or ``(frames, height, width, 1)``): 8-bit pixels in [0, 255] (any integer
type), or floats already scaled to [0, 1]; a path to a ``.npy`` file holding such an array works too. A batch is a list of clips.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from transformers import BatchFeature
from transformers.feature_extraction_utils import FeatureExtractionMixin


class LipVideoProcessor(FeatureExtractionMixin):
    r"""Prepares lip ROI clips for the lip front-end.

    Args:
        size: side of the square ROI the model expects; other sizes are resized (bilinear, antialiased).
        fps: frame rate the model expects.
        image_mean, image_std: normalisation applied to pixels scaled to [0, 1] (the AV-HuBERT/ClearerVoice values
            by default).

    Returns (on call): ``lip_frames`` ``(batch, frames, size, size)`` float32 and ``video_attention_mask``
    ``(batch, frames)`` int (1 on real frames).
    """

    model_input_names = ["lip_frames", "video_attention_mask"]

    def __init__(self, size: int = 88, fps: int = 25, image_mean: float = 0.421, image_std: float = 0.165, **kwargs):
        super().__init__(**kwargs)
        self.size = size
        self.fps = fps
        self.image_mean = image_mean
        self.image_std = image_std

    def _load(self, clip, index: int) -> np.ndarray:
        if isinstance(clip, (str, os.PathLike)):
            if not os.path.exists(clip):
                raise FileNotFoundError(f"lip clip file {clip} does not exist")
            clip = np.load(clip)
        if isinstance(clip, torch.Tensor):
            clip = clip.detach().cpu().numpy()
        clip = np.asarray(clip)
        if clip.ndim == 4 and clip.shape[-1] == 1:
            clip = clip[..., 0]
        if clip.ndim != 3:
            colour = " with colour channels; convert the mouth ROI to grayscale" if clip.ndim == 4 else ""
            raise ValueError(
                f"lip clip {index} has shape {tuple(clip.shape)}{colour}; pass grayscale mouth ROIs as "
                f"(frames, height, width)"
            )
        if clip.shape[0] == 0:
            raise ValueError(f"lip clip {index} has no frames")
        if np.issubdtype(clip.dtype, np.integer):
            # other integer types arrive from datasets' numpy format (which widens uint8 to int64)
            low, high = int(clip.min()), int(clip.max())
            if low < 0 or high > 255:
                raise ValueError(
                    f"lip clip {index} has integer pixels in [{low}, {high}]; pass 8-bit pixels in [0, 255]"
                )
            return clip.astype(np.float32) / 255.0
        if not np.issubdtype(clip.dtype, np.floating):
            raise ValueError(
                f"lip clip {index} has dtype {clip.dtype}; pass uint8 pixels in [0, 255] or floats in [0, 1]"
            )
        if not np.all(np.isfinite(clip)):
            raise ValueError(f"lip clip {index} contains NaN or infinite values")
        low, high = float(clip.min()), float(clip.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"lip clip {index} is float with values in [{low:.3g}, {high:.3g}]; pass uint8 pixels in [0, 255] "
                f"or floats scaled to [0, 1] (divide by 255)"
            )
        return clip.astype(np.float32)

    def _resize(self, clip: np.ndarray) -> np.ndarray:
        if clip.shape[1:] == (self.size, self.size):
            return clip
        frames = torch.from_numpy(clip)[:, None]
        resized = torch.nn.functional.interpolate(
            frames, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False
        )
        return resized[:, 0].numpy()

    def __call__(
        self, videos, max_frames: int | None = None, return_tensors: str | None = None, **kwargs
    ) -> BatchFeature:
        """Turn one clip or a list of clips into ``lip_frames`` and ``video_attention_mask``.

        Args:
            videos: one clip or a list of clips (see the module docstring).
            max_frames: pad every clip to this many frames (default: the longest clip).
            return_tensors: ``"pt"`` or ``"np"``; lists otherwise.
        """
        batch = list(videos) if isinstance(videos, (list, tuple)) else [videos]
        if not batch:
            raise ValueError("no lip clip given: pass a clip (frames, height, width) or a list of clips")
        clips = [self._resize(self._load(clip, index)) for index, clip in enumerate(batch)]
        target = max(len(clip) for clip in clips)
        if max_frames is not None:
            if target > max_frames:
                raise ValueError(f"a lip clip has {target} frames, more than max_frames={max_frames}")
            target = max_frames
        frames = np.zeros((len(clips), target, self.size, self.size), dtype=np.float32)
        mask = np.zeros((len(clips), target), dtype=np.int64)
        for row, clip in enumerate(clips):
            frames[row, : len(clip)] = (clip - self.image_mean) / self.image_std
            mask[row, : len(clip)] = 1
        return BatchFeature({"lip_frames": frames, "video_attention_mask": mask}, tensor_type=return_tensors)
