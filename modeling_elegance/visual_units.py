"""Visual units for AVUR-LLM's refinement stage (VUR): k-means on per-frame visual features, and run-length
compression of the unit sequence.

The clustering is scikit-learn's `MiniBatchKMeans`, a well-kept implementation (the paper's k-means; its best K is
2,000 on LRS3's AV-HuBERT features). The embedded corpus needs far fewer units: its lips are rendered from 49 phone
classes and a few nuisances, so a K of a few hundred already splits every viseme by context; the default below is
256, which the tiny test corpus cannot support (K must not exceed the number of frames).
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

DEFAULT_NUM_UNITS = 256
QUANTIZER_WEIGHTS = "visual_units.safetensors"
QUANTIZER_CONFIG = "visual_units.json"


class VisualUnitQuantizer(nn.Module):
    r"""``(batch, frames, dim)`` visual features -> ``(batch, frames)`` unit ids, the nearest centroid's."""

    def __init__(self, centroids: torch.Tensor):
        super().__init__()
        self.register_buffer("centroids", centroids.float())  # (num_units, dim)

    @property
    def num_units(self) -> int:
        return self.centroids.shape[0]

    @classmethod
    def fit(cls, features, num_units: int = DEFAULT_NUM_UNITS, seed: int = 0, batch_size: int = 4096):
        """k-means on ``features``, an array ``(frames, dim)`` or a list of ``(frames_i, dim)`` clips."""
        from sklearn.cluster import MiniBatchKMeans

        frames = (
            np.concatenate([np.asarray(clip, dtype=np.float32) for clip in features], axis=0)
            if isinstance(features, (list, tuple))
            else np.asarray(features, dtype=np.float32)
        )
        if frames.ndim != 2:
            raise ValueError(f"features must be (frames, dim) or a list of such clips, got shape {frames.shape}")
        if len(frames) < num_units:
            raise ValueError(f"k-means with {num_units} units needs at least as many frames, got {len(frames)}")
        kmeans = MiniBatchKMeans(n_clusters=num_units, random_state=seed, batch_size=batch_size, n_init=3)
        kmeans.fit(frames)
        return cls(torch.from_numpy(kmeans.cluster_centers_.astype(np.float32)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != self.centroids.shape[1]:
            raise ValueError(
                f"features have width {features.shape[-1]}; this quantizer was fitted on width {self.centroids.shape[1]}"
            )
        distances = torch.cdist(features.float(), self.centroids.expand(features.shape[0], -1, -1))
        return distances.argmin(-1)

    def save_pretrained(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        save_file({"centroids": self.centroids.contiguous()}, os.path.join(folder, QUANTIZER_WEIGHTS))
        with open(os.path.join(folder, QUANTIZER_CONFIG), "w") as stream:
            json.dump({"num_units": self.num_units, "feature_dim": int(self.centroids.shape[1])}, stream)

    @classmethod
    def from_pretrained(cls, folder: str) -> VisualUnitQuantizer:
        path = os.path.join(folder, QUANTIZER_WEIGHTS)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{folder} holds no visual-unit quantizer ({QUANTIZER_WEIGHTS})")
        return cls(load_file(path)["centroids"])


def run_length_compress(units) -> tuple[list[int], list[int]]:
    """``[5, 5, 5, 2, 2, 7]`` -> ``([5, 2, 7], [3, 2, 1])``: each run's unit and its length."""
    values, counts = [], []
    for unit in (int(u) for u in units):
        if values and values[-1] == unit:
            counts[-1] += 1
        else:
            values.append(unit)
            counts.append(1)
    return values, counts


def run_length_expand(values, counts) -> list[int]:
    """The inverse of :func:`run_length_compress`."""
    return [int(value) for value, count in zip(values, counts) for _ in range(int(count))]
