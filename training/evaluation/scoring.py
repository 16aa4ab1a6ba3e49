"""Scores a saved extraction model, example by example, next to its reference points.

Every record holds four systems: the **model**; the **mixture** itself (0 dB SI-SDRi by definition); an
**audio-only** backbone trained with the same budget, when one is given (what the lips add); and the **oracle**
ideal ratio mask computed on the model's own encoder filterbank, ``E(s) / (E(s) + E(x - s))`` applied to
``E(x)`` and decoded by the model's decoder (what the architecture could reach).

A record also keeps what its split holds besides the audio: the impairment and impaired ratio of impaired lips, the
language, and activity-aware scores where the split has the target's activity (SI-SDR over the frames where the
target speaks, and the estimate's energy relative to the mixture's where it is silent). ``report`` summarises them.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from processing.output_scaling import scale_to_mixture
from processing.pitch import voice_register

from . import metrics as M

FAST_METRICS = ("si_sdr", "si_sdri", "sdr", "sdri")


def _perceptual_scores(job) -> dict:
    """PESQ, STOI and ESTOI of one estimate (a worker-process job)."""
    estimate, reference = job
    return {
        "pesq": float(M.pesq_wideband(estimate, reference)[0]),
        "stoi": float(M.stoi(estimate, reference)[0]),
        "estoi": float(M.stoi(estimate, reference, extended=True)[0]),
    }


def iterate_batches(dataset, batch_size: int):
    """Dicts of per-example lists, ``batch_size`` examples at a time (one at a time where lengths differ, as in
    real-data lists)."""
    for start in range(0, len(dataset), batch_size):
        stop = min(start + batch_size, len(dataset))
        if hasattr(dataset, "column_names"):
            rows = {key: list(values) for key, values in dataset[start:stop].items()}
        else:
            examples = [dataset[index] for index in range(start, stop)]
            rows = {key: [example[key] for example in examples] for key in examples[0]}
        if len({len(mixture) for mixture in rows["mixture"]}) == 1:
            yield rows
        else:
            for index in range(stop - start):
                yield {key: values[index : index + 1] for key, values in rows.items()}


def oracle_estimate(model, mixture: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The ideal ratio mask on ``model``'s encoder (its filterbank, or the STFT magnitude), decoded by its decoder:
    ``(batch, samples)``."""
    mixture, target = mixture.to(model.device), target.to(model.device)
    with torch.inference_mode():
        encoder = model.encoder
        mask = encoder.ideal_ratio_mask(encoder(target), encoder(mixture - target))
        return model.decoder(encoder.apply_mask(encoder(mixture), mask), mixture.shape[-1]).float().cpu()


def activity_sample_mask(activity: np.ndarray, samples: int, fps: int, sampling_rate: int) -> np.ndarray:
    """Per-video-frame 0/1 activity -> per-sample boolean mask."""
    frame = (np.arange(samples) * fps // sampling_rate).clip(max=len(activity) - 1)
    return np.asarray(activity, dtype=bool)[frame]


def extract_batch(model, processor, rows: dict, text_prior=None) -> torch.Tensor:
    """An extraction model's estimates ``(batch, samples)`` of the mixtures of ``rows`` (corpus columns ``mixture``,
    ``lips``, ``transcript``), padded to the longest; with ``text_prior``, the true transcript's LLM embeddings are
    its prior (text-informed extraction)."""
    audio = list(rows["mixture"])
    if model.config.lip_input is None:
        inputs = dict(processor.audio_feature_extractor(audio, return_tensors="pt"))
    else:
        inputs = dict(processor(audio=audio, videos=list(rows["lips"]), return_tensors="pt"))
    if text_prior is not None:
        from ..data import pad_sequences

        tokens = [text_prior.lookup(str(text))[0] for text in rows["transcript"]]
        inputs["prior_embeds"], inputs["prior_attention_mask"] = pad_sequences(tokens)
    inputs = {name: value.to(model.device) for name, value in inputs.items()}
    with torch.inference_mode():
        return model(**inputs).waveform.float().cpu()


class ExtractionEvaluator:
    r"""Scores a model on corpus examples.

    Args:
        model: a ``...ForTargetSpeechExtraction`` (or ``...ForSpeechEnhancement``) model.
        processor: its processor.
        audio_only_model: optional audio-only model of the same budget (scored as ``audio_only``).
        perceptual: also compute PESQ, STOI and ESTOI (slower; run in ``num_workers`` processes).
        batch_size: examples per model call.
        num_workers: processes for the perceptual metrics (default: every core).
        text_prior: a :class:`~training.transcript_embedding_cache.TranscriptEmbeddings`: the model (trained with input
            guidance) then receives the true transcript's LLM embeddings as its prior (text-informed extraction).
    """

    def __init__(
        self,
        model,
        processor,
        audio_only_model=None,
        audio_only_processor=None,
        perceptual: bool = True,
        batch_size: int = 8,
        num_workers: int | None = None,
        text_prior=None,
    ):
        self.model = model.eval()
        self.processor = processor
        self.audio_only_model = None if audio_only_model is None else audio_only_model.eval()
        self.audio_only_processor = audio_only_processor or processor
        self.perceptual = perceptual
        self.batch_size = batch_size
        self.num_workers = num_workers or os.cpu_count() or 1
        self.text_prior = text_prior
        if text_prior is not None and model.config.prior_embedding_dim != text_prior.hidden_size:
            raise ValueError(
                f"text-informed extraction needs a model trained with input guidance on {text_prior.hidden_size}-wide "
                f"LLM embeddings; this model's prior_embedding_dim is {model.config.prior_embedding_dim}"
            )

    def _extract(self, model, processor, rows: dict) -> torch.Tensor:
        return extract_batch(model, processor, rows, self.text_prior if model is self.model else None)

    def score_examples(self, dataset, progress=None) -> list[dict]:
        """One dict per example: every system's scores and the example's scenario fields."""
        records = []
        jobs = []
        for rows in iterate_batches(dataset, self.batch_size):
            mixture = torch.as_tensor(np.stack(rows["mixture"]), dtype=torch.float32)
            target = torch.as_tensor(np.stack(rows["target"]), dtype=torch.float32)
            estimates = {
                "model": self._extract(self.model, self.processor, rows),
                "mixture": mixture,
                "oracle": oracle_estimate(self.model, mixture, target),
            }
            if self.audio_only_model is not None:
                estimates["audio_only"] = self._extract(self.audio_only_model, self.audio_only_processor, rows)
            mixture_si_sdr, mixture_sdr = M.si_sdr(mixture, target), M.sdr(mixture, target)
            scores = {}
            for system, estimate in estimates.items():
                system_si_sdr, system_sdr = M.si_sdr(estimate, target), M.sdr(estimate, target)
                scores[system] = {
                    "si_sdr": system_si_sdr,
                    "si_sdri": system_si_sdr - mixture_si_sdr,
                    "sdr": system_sdr,
                    "sdri": system_sdr - mixture_sdr,
                }
            for row in range(len(mixture)):
                record = {
                    "split_fields": {
                        key: _plain(rows[key][row])
                        for key in ("language", "impairment", "impaired_ratio", "noise_type", "snr_db")
                        if key in rows
                    }
                }
                for system in estimates:
                    record[system] = {name: float(values[row]) for name, values in scores[system].items()}
                if "interferers" in rows and len(rows["interferers"][row]):  # talker mixtures
                    record["voice_pair"] = voice_pair(rows["target"][row], rows["interferers"][row][0], rows, row)
                if "target_activity" in rows:
                    record["activity"] = self._activity_scores(estimates, mixture[row], target[row], rows, row)
                records.append(record)
                if self.perceptual:
                    jobs.extend(
                        (len(records) - 1, system, estimates[system][row].numpy(), target[row].numpy())
                        for system in estimates
                    )
            if progress is not None:
                progress.update(len(mixture))
        if self.perceptual:
            self._add_perceptual(records, jobs)
        return records

    def _activity_scores(self, estimates, mixture, target, rows, row) -> dict:
        active = activity_sample_mask(
            rows["target_activity"][row], len(target), int(rows["fps"][row]), int(rows["sampling_rate"][row])
        )
        result = {}
        for system, estimate in estimates.items():
            estimate = estimate[row]
            entry = {"active_si_sdr": math.nan, "silent_energy_db": math.nan}
            if active.any():
                entry["active_si_sdr"] = float(M.si_sdr(estimate[active], target[active])[0])
            if (~active).any():
                estimate = scale_to_mixture(estimate, mixture)  # a scale-free estimate's energy means nothing
                silent = torch.as_tensor(~active)
                energy = estimate[silent].double().pow(2).sum() / mixture[silent].double().pow(2).sum().clamp_min(1e-12)
                entry["silent_energy_db"] = float(10 * torch.log10(energy.clamp_min(1e-12)))
            result[system] = entry
        return result

    def _add_perceptual(self, records, jobs):
        payload = [(estimate, reference) for _, _, estimate, reference in jobs]
        if self.num_workers > 1 and len(payload) > 1:
            # spawned, not forked: a child forked from a process whose OpenMP threads are running can hang
            with ProcessPoolExecutor(self.num_workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                results = list(pool.map(_perceptual_scores, payload, chunksize=4))
        else:
            results = [_perceptual_scores(job) for job in payload]
        for (index, system, *_), scores in zip(jobs, results):
            records[index][system].update(scores)


def voice_pair(target, interferer, rows: dict, row: int) -> str:
    """``"TARGET-INTERFERER"`` registers of a talker mixture's clean voices, e.g. ``"high-high"`` for two high
    voices (see :func:`processing.pitch.voice_register`)."""
    sampling_rate = int(rows["sampling_rate"][row]) if "sampling_rate" in rows else 16000
    return f"{voice_register(target, sampling_rate)}-{voice_register(interferer, sampling_rate)}"


def _plain(value):
    return value.item() if hasattr(value, "item") else str(value) if isinstance(value, bytes) else value
