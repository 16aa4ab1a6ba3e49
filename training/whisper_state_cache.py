"""The frozen Whisper encoder's states of each training clip, computed once and kept on disk.

AVUR-LLM's first stage trains its alignment and fusion blocks around a frozen Whisper. Whisper reads a 30-s window
whatever the clip's length, and its encoder is nearly all of a training step's cost on a CPU (measured on the
offline tiny.en: 8 clips, 10.7 s of encoder in an 18.4-s forward pass). With Whisper frozen, what the encoder gives
the rest of the model (:meth:`~modeling_elegance.AvurForConditionalGeneration.encode_audio`: the states the
alignment blocks read and the encoder's output) depends on the audio alone, so each clip is encoded once:
``CACHE_DIR/whisper-states-<key>/<clip hash>.safetensors``, the key hashing the encoder's weights, the alignment
layers and the feature extractor's settings. Every run of the same Whisper on the same clips (other seeds, other
fusion settings) reads the same files.

Training stores the states in float16 (3.5 MB a clip for tiny.en with two alignment layers): the loss from cached
states differs from the loss from the audio by that rounding (``tests/test_avur.py`` bounds it). Evaluation
(``elegance-evaluate --cache_audio_states``) stores them in float32, so that a model decodes from its cache exactly
what it decodes from the audio (tested), and every model on the same frozen Whisper reuses them.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .lip_embedding_cache import module_fingerprint

CACHE_VERSION = 1


def audio_digest(waveform: np.ndarray) -> str:
    """A hash of a float32 waveform: its length and its samples."""
    waveform = np.ascontiguousarray(waveform, dtype=np.float32)
    return hashlib.sha1(repr(waveform.shape).encode() + waveform.tobytes()).hexdigest()


class WhisperStateCache:
    r"""``waveforms -> audio_states (batch, len(sma_layers) + 1, frames, d_model)`` of a frozen AVUR model.

    Args:
        model: the :class:`~modeling_elegance.AvurForConditionalGeneration` whose Whisper stays frozen.
        feature_extractor: its Whisper feature extractor (the processor's ``feature_extractor``).
        cache_dir: where the ``whisper-states-<key>`` folder goes.
        batch_size: clips encoded at a time when some are missing.
        dtype: what the states are stored in (``torch.float16`` or ``torch.float32``).
    """

    def __init__(self, model, feature_extractor, cache_dir: str, batch_size: int = 8, dtype=torch.float16):
        self.model, self.feature_extractor, self.batch_size = model, feature_extractor, batch_size
        if dtype not in (torch.float16, torch.float32):
            raise ValueError(f"the cached states are stored in torch.float16 or torch.float32, not {dtype}")
        self.dtype = dtype
        settings = {
            "version": CACHE_VERSION,
            "encoder": module_fingerprint(model.whisper.model.encoder),
            "sma_layers": list(model.config.sma_layers),
            "features": [feature_extractor.feature_size, feature_extractor.n_samples, feature_extractor.hop_length],
        }
        if dtype != torch.float16:  # float16 folders keep the key they had before the dtype was a choice
            settings["dtype"] = str(dtype)
        key = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:24]
        self.folder = os.path.join(cache_dir, f"whisper-states-{key}")
        self.hits = self.misses = 0

    def path(self, digest: str) -> str:
        return os.path.join(self.folder, f"{digest}.safetensors")

    def __call__(self, waveforms: list[np.ndarray]) -> torch.Tensor:
        digests = [audio_digest(waveform) for waveform in waveforms]
        states: list[torch.Tensor | None] = [
            load_file(self.path(d))["states"] if os.path.exists(self.path(d)) else None for d in digests
        ]
        missing = [index for index, state in enumerate(states) if state is None]
        self.hits += len(waveforms) - len(missing)
        self.misses += len(missing)
        os.makedirs(self.folder, exist_ok=True)
        for start in range(0, len(missing), self.batch_size):
            group = missing[start : start + self.batch_size]
            features = self.feature_extractor(
                [np.asarray(waveforms[index], dtype=np.float32) for index in group],
                sampling_rate=self.feature_extractor.sampling_rate,
                return_tensors="pt",
            ).input_features
            encoded = self.model.encode_audio(features.to(self.model.device, self.model.dtype)).to(self.dtype).cpu()
            for row, index in enumerate(group):
                states[index] = encoded[row].contiguous()
                staging = f"{self.path(digests[index])}.{os.getpid()}.partial"
                save_file({"states": states[index]}, staging)
                os.replace(staging, self.path(digests[index]))  # whole or not at all
        return torch.stack(states).float()
