"""Word error rates of extracted speech, by a speech recogniser used as the judge."""

from __future__ import annotations

import torch

from .metrics import word_error_rate
from .scoring import ExtractionEvaluator, iterate_batches


class CTCTranscriber:
    """Greedy CTC transcription with any HF CTC model (wav2vec2, HuBERT; the package's PSLM)."""

    def __init__(self, name_or_path: str):
        from transformers import AutoModelForCTC, AutoProcessor

        self.model = AutoModelForCTC.from_pretrained(name_or_path).eval()
        self.processor = AutoProcessor.from_pretrained(name_or_path)

    def __call__(self, waveforms) -> list[str]:
        inputs = self.processor(list(waveforms), sampling_rate=16000, return_tensors="pt", padding=True)
        with torch.inference_mode():
            ids = self.model(inputs["input_values"]).logits.argmax(-1)
        return self.processor.batch_decode(ids)


def word_error_rates(evaluator: ExtractionEvaluator, dataset, transcriber, batch_size: int) -> dict:
    """Corpus WER of the model's estimates and of the mixtures against the transcripts."""
    hypotheses, mixtures, references = [], [], []
    for rows in iterate_batches(dataset, batch_size):
        estimates = evaluator._extract(evaluator.model, evaluator.processor, rows)
        hypotheses += transcriber([estimate.numpy() for estimate in estimates])
        mixtures += transcriber(rows["mixture"])
        references += [str(text) for text in rows["transcript"]]
    return {"model": word_error_rate(hypotheses, references), "mixture": word_error_rate(mixtures, references)}
