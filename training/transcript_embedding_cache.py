"""Frozen LLM embeddings of transcripts, computed once and cached on disk.

Input guidance, output guidance and CMKT only need what a frozen LLM says about the target transcript, so the
training loop never runs that LLM: the embeddings of every distinct transcript are computed once per dataset and
stored in ``CACHE_DIR/<key>.safetensors``, the key hashing the LLM (name and weights fingerprint), the settings
and the transcripts. A second run with the same key loads the file.

Per transcript: ``tokens (tokens, hidden)``, the LLM's last hidden states of its tokens (specials included), and
``pooled (hidden,)``, their mean (the sentence-embedding pooling of MiniLM).
"""

from __future__ import annotations

import hashlib
import json
import os

import torch
from safetensors.torch import load_file, save_file

from .language_model import load_text_encoder, model_fingerprint, resolve_llm, tokenize_transcripts

CACHE_VERSION = 1
DEFAULT_MAX_TEXT_TOKENS = 64  # transcripts are cut to this many LLM tokens, in training and at inference


def default_cache_dir() -> str:
    return os.environ.get("ELEGANCE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "elegance")


class TranscriptEmbeddings:
    r"""Lookup ``transcript -> (tokens (tokens, hidden), pooled (hidden,))`` of a frozen LLM.

    Build with :meth:`load_or_compute`; ``cache_hit`` says whether the file was found.
    """

    def __init__(self, texts: list[str], token_embeds: torch.Tensor, offsets: torch.Tensor, pooled: torch.Tensor):
        self.index = {text: row for row, text in enumerate(texts)}
        self.token_embeds = token_embeds  # (all tokens, hidden)
        self.offsets = offsets  # (texts + 1,)
        self.pooled = pooled  # (texts, hidden)
        self.cache_hit = False
        self.path: str | None = None

    @property
    def hidden_size(self) -> int:
        return self.pooled.shape[-1]

    def __contains__(self, text: str) -> bool:
        return text in self.index

    def lookup(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        if text not in self.index:
            raise KeyError(
                f"no cached LLM embedding for transcript {text[:60]!r}; the cache was built for other data: "
                f"build it for every split you train or evaluate on"
            )
        row = self.index[text]
        return self.token_embeds[self.offsets[row] : self.offsets[row + 1]], self.pooled[row]

    @classmethod
    def load_or_compute(
        cls,
        texts,
        llm: str | None,
        max_tokens: int,
        cache_dir: str | None = None,
        batch_size: int = 64,
        log=print,
    ) -> TranscriptEmbeddings:
        texts = sorted(set(texts))
        if any(text == "" for text in texts):
            raise ValueError(
                "some examples have an empty transcript; LLM guidance needs the target's transcript for every "
                "training example (train real data without transcripts with --guidance none)"
            )
        path = resolve_llm(llm)
        settings = {
            "version": CACHE_VERSION,
            "llm": path,
            "fingerprint": model_fingerprint(path),
            "max_tokens": max_tokens,
        }
        key = hashlib.sha256(json.dumps({"settings": settings, "texts": texts}).encode()).hexdigest()[:24]
        cache_dir = cache_dir or default_cache_dir()
        file = os.path.join(cache_dir, f"llm-embeddings-{key}.safetensors")
        if os.path.exists(file):
            tensors = load_file(file)
            embeddings = cls(texts, tensors["token_embeds"], tensors["offsets"], tensors["pooled"])
            embeddings.cache_hit, embeddings.path = True, file
            log(f"LLM embeddings of {len(texts)} transcripts loaded from {file}")
            return embeddings
        embeddings = cls._compute(texts, path, max_tokens, batch_size)
        os.makedirs(cache_dir, exist_ok=True)
        staging = f"{file}.{os.getpid()}.partial"
        tensors = {"token_embeds": embeddings.token_embeds, "offsets": embeddings.offsets, "pooled": embeddings.pooled}
        save_file(tensors, staging, metadata={"settings": json.dumps(settings)})
        os.replace(staging, file)
        embeddings.path = file
        log(f"LLM embeddings of {len(texts)} transcripts computed and cached in {file}")
        return embeddings

    @classmethod
    def _compute(cls, texts: list[str], path: str, max_tokens: int, batch_size: int) -> TranscriptEmbeddings:
        model, tokenizer = load_text_encoder(path)
        rows, pooled = [], []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                tokens = tokenize_transcripts(tokenizer, texts[start : start + batch_size], max_tokens)
                hidden = model(**tokens).last_hidden_state  # (batch, tokens, hidden)
                mask = tokens["attention_mask"]
                for row in range(hidden.shape[0]):
                    rows.append(hidden[row, mask[row].bool()].float().clone())
                weights = mask[..., None].to(hidden.dtype)
                pooled.append(((hidden * weights).sum(1) / weights.sum(1)).float())
        lengths = torch.tensor([0] + [len(row) for row in rows])
        return cls(texts, torch.cat(rows), lengths.cumsum(0), torch.cat(pooled))
