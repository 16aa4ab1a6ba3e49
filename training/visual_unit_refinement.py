"""AVUR-LLM's second stage at inference: the recogniser's N-best list, rescored by the visual-unit rescorer.

``VisualUnitRefinement.from_pretrained(vur_folder)`` loads what ``elegance-train-vur`` wrote (the rescorer's LM and
tokenizer, the k-means quantizer, ``vur_config.json``). Called with a first-stage recogniser and its processor on
a batch of clips, it runs beam search (``nbest`` beams, all returned with their scores), turns each clip's lips into
visual units (the lip encoder's front-end features, quantised) and returns, per clip, the hypothesis with the best
LM score plus weighted first-pass score, with the beam's own first choice beside it (what the rescoring changed).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import torch

from modeling_elegance.visual_unit_rescorer import VisualUnitRescorer
from modeling_elegance.visual_units import VisualUnitQuantizer
from processing.processing_avur import max_new_tokens_for

VUR_CONFIG = "vur_config.json"


def mid_layer_features(recognizer, lip_frames: torch.Tensor, video_attention_mask: torch.Tensor) -> list[np.ndarray]:
    """The lip encoder's front-end features ``(frames, channels)`` of each clip: the visual units' input."""
    with torch.inference_mode():
        features = recognizer.lip_encoder.frontend(lip_frames)  # (batch, frames, channels)
    lengths = video_attention_mask.long().sum(-1).tolist()
    return [features[row, :length].cpu().numpy() for row, length in enumerate(lengths)]


@dataclass
class VisualUnitRefinement:
    rescorer: VisualUnitRescorer
    quantizer: VisualUnitQuantizer
    first_pass_weight: float = 1.0
    nbest: int = 5

    @classmethod
    def from_pretrained(cls, folder: str) -> VisualUnitRefinement:
        if not os.path.exists(os.path.join(folder, VUR_CONFIG)):
            raise ValueError(f"{folder} has no {VUR_CONFIG}: pass the vur folder that elegance-train-vur writes")
        with open(os.path.join(folder, VUR_CONFIG)) as stream:
            config = json.load(stream)
        return cls(
            VisualUnitRescorer.from_pretrained(folder),
            VisualUnitQuantizer.from_pretrained(folder),
            float(config.get("first_pass_weight", 1.0)),
            int(config.get("nbest", 5)),
        )

    def __call__(self, recognizer, processor, audio, lips, audio_states=None) -> tuple[list[str], list[str]]:
        """``(rescored, beam_first)``: per clip, the refined transcript and the beam search's own best.
        ``audio_states``: the recogniser's :class:`~training.whisper_state_cache.WhisperStateCache`, if any."""
        from .evaluation.recognition_scoring import audio_inputs

        if recognizer.lip_encoder is None:
            raise ValueError("visual-unit refinement needs a recogniser with a lip encoder (lip_input='frames')")
        inputs, audio_input = audio_inputs(processor, audio, lips, audio_states)
        device = next(recognizer.parameters()).device
        seconds = max(len(waveform) for waveform in audio) / processor.feature_extractor.sampling_rate
        lip_frames, lip_mask = inputs["lip_frames"].to(device), inputs["video_attention_mask"].to(device)
        with torch.inference_mode():
            output = recognizer.generate(
                **{name: value.to(device) for name, value in audio_input.items()},
                attention_mask=inputs["attention_mask"].to(device),
                lip_frames=lip_frames,
                video_attention_mask=lip_mask,
                num_beams=self.nbest,
                num_return_sequences=self.nbest,
                output_scores=True,
                return_dict_in_generate=True,
                do_sample=False,
                max_new_tokens=max_new_tokens_for(seconds),
            )
            texts = processor.batch_decode(output.sequences)
            rescored, beam_first = [], []
            for row, features in enumerate(mid_layer_features(recognizer, lip_frames, lip_mask)):
                units = self.quantizer(torch.from_numpy(features)[None])[0].tolist()
                hypotheses = texts[row * self.nbest : (row + 1) * self.nbest]
                first_pass = output.sequences_scores[row * self.nbest : (row + 1) * self.nbest]
                best = self.rescorer.rerank(self.rescorer.score(units, hypotheses), first_pass, self.first_pass_weight)
                rescored.append(hypotheses[best])
                beam_first.append(hypotheses[0])
        return rescored, beam_first
