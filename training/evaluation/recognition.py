"""Word error rates of extracted speech, by a speech recogniser used as the judge.

``load_transcriber(name_or_path)`` takes any Whisper (a Hub name such as ``openai/whisper-small``, a folder, or
None for the offline Whisper tiny.en of ``elegance-whisper-offline``) or any CTC model (wav2vec2, HuBERT, the
package's PSLM). Both transcribe greedily, ``(samples,)`` waveforms at 16 kHz in, one string each out.
"""

from __future__ import annotations

import numpy as np
import torch

from processing.processing_avur import max_new_tokens_for

from .metrics import word_error_rate
from .scoring import ExtractionEvaluator, iterate_batches

SAMPLING_RATE = 16000  # what every recogniser here reads; the corpus and the models share it


class CTCTranscriber:
    """Greedy CTC transcription with any HF CTC model (wav2vec2, HuBERT; the package's PSLM)."""

    def __init__(self, name_or_path: str):
        from transformers import AutoModelForCTC, AutoProcessor

        self.model = AutoModelForCTC.from_pretrained(name_or_path).eval()
        self.processor = AutoProcessor.from_pretrained(name_or_path)

    def __call__(self, waveforms) -> list[str]:
        inputs = self.processor(list(waveforms), sampling_rate=SAMPLING_RATE, return_tensors="pt", padding=True)
        with torch.inference_mode():
            ids = self.model(inputs["input_values"]).logits.argmax(-1)
        return self.processor.batch_decode(ids)


class WhisperTranscriber:
    """Greedy Whisper transcription without timestamps (in English for a multilingual checkpoint), with at most
    :func:`max_new_tokens_for` the longest clip's duration."""

    def __init__(self, name_or_path: str | None = None):
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        if name_or_path is None:
            from ..offline_whisper import offline_whisper

            name_or_path = offline_whisper()
        self.name_or_path = name_or_path
        self.model = WhisperForConditionalGeneration.from_pretrained(name_or_path).eval()
        self.processor = WhisperProcessor.from_pretrained(name_or_path)

    def __call__(self, waveforms) -> list[str]:
        waveforms = [np.asarray(waveform, dtype=np.float32) for waveform in waveforms]
        features = self.processor.feature_extractor(
            waveforms,
            sampling_rate=SAMPLING_RATE,
            return_tensors="pt",
        ).input_features
        multilingual = getattr(self.model.generation_config, "is_multilingual", None)
        if multilingual is None:  # a generation config without the flag: Whisper's multilingual vocabularies are larger
            multilingual = self.model.config.vocab_size >= 51865
        language = {"language": "en", "task": "transcribe"} if multilingual else {}
        with torch.inference_mode():
            ids = self.model.generate(
                features.to(self.model.dtype),
                num_beams=1,
                do_sample=False,
                max_new_tokens=max_new_tokens_for(max(len(waveform) for waveform in waveforms) / SAMPLING_RATE),
                **language,
            )
        return [text.strip() for text in self.processor.batch_decode(ids, skip_special_tokens=True)]


def load_transcriber(name_or_path: str | None = None):
    """A Whisper or CTC transcriber for ``name_or_path`` (None: the offline Whisper), chosen by its config."""
    if name_or_path is None:
        return WhisperTranscriber()
    from transformers import AutoConfig

    model_type = AutoConfig.from_pretrained(name_or_path).model_type
    return WhisperTranscriber(name_or_path) if model_type == "whisper" else CTCTranscriber(name_or_path)


def word_error_rates(evaluator: ExtractionEvaluator, dataset, transcriber, batch_size: int) -> dict:
    """Corpus WER against the transcripts of the model's estimates, of the mixtures, and of the clean references
    (the recogniser's own floor on this split); on a split in noise also per SNR, under ``by_snr``."""
    transcripts = {"model": [], "mixture": [], "reference": []}
    references, snrs = [], []
    for rows in iterate_batches(dataset, batch_size):
        estimates = evaluator._extract(evaluator.model, evaluator.processor, rows)
        transcripts["model"] += transcriber([estimate.numpy() for estimate in estimates])
        transcripts["mixture"] += transcriber(rows["mixture"])
        transcripts["reference"] += transcriber(rows["target"])
        references += [str(text) for text in rows["transcript"]]
        snrs += [float(snr) for snr in rows["snr_db"]] if "snr_db" in rows else [float("nan")] * len(rows["target"])
    result = {system: word_error_rate(hypotheses, references) for system, hypotheses in transcripts.items()}
    noisy = sorted({snr for snr in snrs if not np.isnan(snr)})
    if noisy:
        result["by_snr"] = {
            f"{snr:g}": {
                system: word_error_rate(
                    [h for h, s in zip(hypotheses, snrs) if s == snr], [r for r, s in zip(references, snrs) if s == snr]
                )
                for system, hypotheses in transcripts.items()
            }
            for snr in noisy
        }
    return result
