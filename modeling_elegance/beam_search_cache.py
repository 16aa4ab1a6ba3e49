"""A Whisper decoding cache that does not copy the cross-attention keys and values at every beam-search step.

Beam search reorders the decoder's cache after each token so that every beam carries the history of the beam it
continues. transformers' `EncoderDecoderCache.reorder_cache` reorders the cross-attention cache too, although beams
are only ever reordered within their own example and all beams of an example hold the same cross-attention keys and
values (projections of the same encoder output). For Whisper that copy is large: its encoder always yields 1,500
frames (a 30-s window), so each step copies ``2 x layers x beams x 1,500 x d_model`` numbers for nothing.
Measured (offline tiny.en, 3 clips of `test_noisy`, beam 5, 5 returned sequences, one thread on a loaded 2-core
machine): 71.5 s with the stock cache, 31.7 s with this one, identical sequences and scores.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache


class BeamSharedCrossAttentionCache(EncoderDecoderCache):
    """An `EncoderDecoderCache` whose beam reordering moves only the self-attention cache."""

    def __init__(self):
        super().__init__(DynamicCache(), DynamicCache())

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        # beam_idx maps each beam to a beam of the same example (transformers offsets it by example * num_beams), and
        # those share their cross-attention keys and values: only the self-attention history moves
        self.self_attention_cache.reorder_cache(beam_idx)
