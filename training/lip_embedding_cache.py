"""Lip embeddings of a frozen lip encoder, computed once per clip and cached on disk.

With ``--freeze_lip_encoder`` the embedding of a clip is a pure function of the clip and the encoder weights, so the
training loop does not run the encoder on clips it has seen: the embeddings of every clean training clip are
computed once and stored in ``CACHE_DIR/lip-embeddings-<key>.safetensors``, the key hashing the encoder weights,
the lip processor's settings and the clips themselves. A second run with the same key loads the file; any change
of encoder weights or clips gives another key.

Impairment stays where the paper applies it, on the frames before the encoder: an impaired clip is a new clip,
drawn anew every epoch from ``(seed, epoch, index)``, so caching it would only grow the cache. Impaired clips are
embedded on the fly by the same frozen encoder (no gradient), and only the clean ones are looked up.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .transcript_embedding_cache import default_cache_dir

CACHE_VERSION = 1


def clip_digest(clip: np.ndarray) -> str:
    """A hash of a uint8 ``(frames, height, width)`` clip: its shape and its pixels."""
    clip = np.ascontiguousarray(clip, dtype=np.uint8)
    return hashlib.sha1(repr(clip.shape).encode() + clip.tobytes()).hexdigest()


def module_fingerprint(module: torch.nn.Module) -> str:
    """A hash of a module's weights and buffers (names, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class LipEmbeddings:
    r"""Per-clip embeddings ``(frames, lip_embedding_dim)`` of a frozen lip encoder.

    Args:
        encoder: the frozen :class:`~modeling_elegance.lip_encoder.LipEncoder` (a backbone's
            ``visual_encoder.lip_encoder``); it is put in eval mode.
        lip_processor: the :class:`~processing.LipVideoProcessor` that normalises clips for it.
    """

    def __init__(self, encoder: torch.nn.Module, lip_processor):
        self.encoder = encoder.eval()
        self.lip_processor = lip_processor
        self.table: dict[str, torch.Tensor] = {}
        self.cache_hit = False
        self.path: str | None = None

    def settings(self) -> dict:
        processor = self.lip_processor
        return {
            "version": CACHE_VERSION,
            "encoder": module_fingerprint(self.encoder),
            "processor": [processor.size, processor.fps, processor.image_mean, processor.image_std],
        }

    @torch.inference_mode()
    def embed(self, clips: list[np.ndarray], batch_size: int = 16) -> list[torch.Tensor]:
        """Run the encoder: ``[(frames_i, H, W) uint8]`` -> ``[(frames_i, lip_embedding_dim)]``."""
        out = []
        for start in range(0, len(clips), batch_size):
            group = clips[start : start + batch_size]
            batch = self.lip_processor(group, return_tensors="pt")
            lengths = batch["video_attention_mask"].sum(-1)
            embedded = self.encoder(batch["lip_frames"], lengths)
            out += [embedded[row, : int(lengths[row])].float().clone() for row in range(len(group))]
        return out

    def __call__(self, clips: list[np.ndarray], cached: list[bool]) -> list[torch.Tensor]:
        """Embeddings of ``clips``: looked up where ``cached`` is true (clean clips), computed otherwise."""
        result: list[torch.Tensor | None] = [None] * len(clips)
        fresh = []
        for index, (clip, use_cache) in enumerate(zip(clips, cached)):
            hit = self.table.get(clip_digest(clip)) if use_cache else None
            if hit is None:
                fresh.append(index)
            result[index] = hit
        for index, embedding in zip(fresh, self.embed([clips[i] for i in fresh])):
            result[index] = embedding
        return result

    def load_or_compute(self, clips, cache_dir: str | None = None, log=print) -> LipEmbeddings:
        """Fill the table with the embeddings of ``clips`` (an iterable of uint8 clips), from the cache file when
        it exists, else computed and written (atomically) to it."""
        clips = [np.asarray(clip, dtype=np.uint8) for clip in clips]
        digests = [clip_digest(clip) for clip in clips]
        unique = sorted(set(digests))
        key = hashlib.sha256(json.dumps({"settings": self.settings(), "clips": unique}).encode()).hexdigest()[:24]
        cache_dir = cache_dir or default_cache_dir()
        file = os.path.join(cache_dir, f"lip-embeddings-{key}.safetensors")
        self.path = file
        if os.path.exists(file):
            tensors = load_file(file)
            self.table = {digest: tensors[digest] for digest in unique}
            self.cache_hit = True
            log(f"lip embeddings of {len(unique)} clips loaded from {file}")
            return self
        first = {}
        for digest, clip in zip(digests, clips):
            first.setdefault(digest, clip)
        self.table = dict(zip(unique, self.embed([first[digest] for digest in unique])))
        os.makedirs(cache_dir, exist_ok=True)
        staging = f"{file}.{os.getpid()}.partial"
        save_file(self.table, staging, metadata={"settings": json.dumps(self.settings())})
        os.replace(staging, file)
        log(f"lip embeddings of {len(unique)} clips computed and cached in {file}")
        return self
