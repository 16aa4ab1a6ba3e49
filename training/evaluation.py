"""ELEGANCE's test scenarios: score a saved extraction model on corpus splits, next to its reference points.

Every table holds four systems: the **model**; the **mixture** itself (0 dB SI-SDRi by definition); an
**audio-only** backbone trained with the same budget, when one is given (what the lips add); and the **oracle**
ideal ratio mask computed on the model's own encoder filterbank, ``E(s) / (E(s) + E(x - s))`` applied to
``E(x)`` and decoded by the model's decoder (what the architecture could reach). The model's SI-SDRi is also
reported as a fraction of the oracle's.

Per split, besides the core metrics: ``test_impaired`` SI-SDRi per impairment type and ratio, ``test_unseen_lang``
per language, ``test_switch`` activity-aware numbers (SI-SDR over the frames where the target speaks, and the
estimate's energy relative to the mixture's where it is silent).
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from . import metrics as M

CORE_METRICS = ("si_sdr", "si_sdri", "sdr", "sdri", "pesq", "stoi", "estoi")
FAST_METRICS = ("si_sdr", "si_sdri", "sdr", "sdri")
SYSTEMS = ("model", "mixture", "audio_only", "oracle")


def _perceptual_scores(job) -> dict:
    """PESQ, STOI and ESTOI of one estimate (a worker-process job)."""
    estimate, reference = job
    return {"pesq": float(M.pesq_wideband(estimate, reference)[0]), "stoi": float(M.stoi(estimate, reference)[0]),
            "estoi": float(M.stoi(estimate, reference, extended=True)[0])}


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
    """The ideal ratio mask on ``model``'s encoder filterbank, decoded by its decoder: ``(batch, samples)``."""
    mixture, target = mixture.to(model.device), target.to(model.device)
    with torch.inference_mode():
        encoded_mixture = model.encoder(mixture)
        encoded_target, encoded_rest = model.encoder(target), model.encoder(mixture - target)
        mask = encoded_target / (encoded_target + encoded_rest).clamp_min(1e-8)
        return model.decoder(encoded_mixture * mask.clamp(0, 1), mixture.shape[-1]).float().cpu()


def activity_sample_mask(activity: np.ndarray, samples: int, fps: int, sampling_rate: int) -> np.ndarray:
    """Per-video-frame 0/1 activity -> per-sample boolean mask."""
    frame = (np.arange(samples) * fps // sampling_rate).clip(max=len(activity) - 1)
    return np.asarray(activity, dtype=bool)[frame]


class ExtractionEvaluator:
    r"""Scores a model on corpus examples.

    Args:
        model: a ``...ForTargetSpeechExtraction`` (or ``...ForSpeechEnhancement``) model.
        processor: its processor.
        audio_only_model: optional audio-only model of the same budget (scored as ``audio_only``).
        perceptual: also compute PESQ, STOI and ESTOI (slower; run in ``num_workers`` processes).
        batch_size: examples per model call.
        num_workers: processes for the perceptual metrics (default: every core).
        text_prior: a :class:`~training.embedding_cache.TranscriptEmbeddings`: the model (trained with input
            guidance) then receives the true transcript's LLM embeddings as its prior (text-informed extraction).
    """

    def __init__(self, model, processor, audio_only_model=None, audio_only_processor=None, perceptual: bool = True,
                 batch_size: int = 8, num_workers: int | None = None, text_prior=None):
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
        audio = list(rows["mixture"])
        if model.config.lip_input is None:
            inputs = dict(processor.audio_feature_extractor(audio, return_tensors="pt"))
        else:
            inputs = dict(processor(audio=audio, videos=list(rows["lips"]), return_tensors="pt"))
        if self.text_prior is not None and model is self.model:
            from .data import pad_sequences

            tokens = [self.text_prior.lookup(str(text))[0] for text in rows["transcript"]]
            inputs["prior_embeds"], inputs["prior_attention_mask"] = pad_sequences(tokens)
        inputs = {name: value.to(model.device) for name, value in inputs.items()}
        with torch.inference_mode():
            return model(**inputs).waveform.float().cpu()

    def score_examples(self, dataset, progress=None) -> list[dict]:
        """One dict per example: every system's scores and the example's scenario fields."""
        records = []
        jobs = []
        for rows in iterate_batches(dataset, self.batch_size):
            mixture = torch.as_tensor(np.stack(rows["mixture"]), dtype=torch.float32)
            target = torch.as_tensor(np.stack(rows["target"]), dtype=torch.float32)
            estimates = {"model": self._extract(self.model, self.processor, rows), "mixture": mixture,
                         "oracle": oracle_estimate(self.model, mixture, target)}
            if self.audio_only_model is not None:
                estimates["audio_only"] = self._extract(self.audio_only_model, self.audio_only_processor, rows)
            mixture_si_sdr, mixture_sdr = M.si_sdr(mixture, target), M.sdr(mixture, target)
            scores = {}
            for system, estimate in estimates.items():
                system_si_sdr, system_sdr = M.si_sdr(estimate, target), M.sdr(estimate, target)
                scores[system] = {"si_sdr": system_si_sdr, "si_sdri": system_si_sdr - mixture_si_sdr,
                                  "sdr": system_sdr, "sdri": system_sdr - mixture_sdr}
            for row in range(len(mixture)):
                record = {"split_fields": {key: _plain(rows[key][row]) for key in ("language", "impairment", "impaired_ratio") if key in rows}}
                for system in estimates:
                    record[system] = {name: float(values[row]) for name, values in scores[system].items()}
                if "target_activity" in rows:
                    record["activity"] = self._activity_scores(estimates, mixture[row], target[row], rows, row)
                records.append(record)
                if self.perceptual:
                    jobs.extend((len(records) - 1, system, estimates[system][row].numpy(), target[row].numpy())
                                for system in estimates)
            if progress is not None:
                progress.update(len(mixture))
        if self.perceptual:
            self._add_perceptual(records, jobs)
        return records

    def _activity_scores(self, estimates, mixture, target, rows, row) -> dict:
        active = activity_sample_mask(rows["target_activity"][row], len(target), int(rows["fps"][row]), int(rows["sampling_rate"][row]))
        result = {}
        for system, estimate in estimates.items():
            estimate = estimate[row]
            entry = {"active_si_sdr": math.nan, "silent_energy_db": math.nan}
            if active.any():
                entry["active_si_sdr"] = float(M.si_sdr(estimate[active], target[active])[0])
            if (~active).any():
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


def _plain(value):
    return value.item() if hasattr(value, "item") else str(value) if isinstance(value, bytes) else value


def _mean(values) -> float | None:
    values = [value for value in values if value is not None and not math.isnan(value)]
    return float(np.mean(values)) if values else None


def summarize(split: str, records: list[dict]) -> dict:
    """Means per system, the fraction of the oracle, and the split's own breakdown."""
    systems = [system for system in SYSTEMS if records and system in records[0]]
    metric_names = [name for name in CORE_METRICS if name in records[0]["model"]] if records else []
    summary = {
        "examples": len(records),
        "systems": {system: {name: _mean(r[system].get(name) for r in records) for name in metric_names} for system in systems},
    }
    model, oracle = summary["systems"]["model"].get("si_sdri"), summary["systems"].get("oracle", {}).get("si_sdri")
    summary["fraction_of_oracle"] = None if model is None or not oracle else model / oracle
    if split == "test_impaired":
        table = defaultdict(lambda: defaultdict(list))
        for record in records:
            fields = record["split_fields"]
            table[fields["impairment"]][f"{float(fields['impaired_ratio']):.1f}"].append(record["model"]["si_sdri"])
        summary["si_sdri_by_impairment"] = {kind: {ratio: _mean(v) for ratio, v in sorted(ratios.items())} for kind, ratios in table.items()}
    if split == "test_unseen_lang":
        table = defaultdict(list)
        for record in records:
            table[record["split_fields"]["language"]].append(record)
        summary["by_language"] = {
            language: {system: {"si_sdri": _mean(r[system]["si_sdri"] for r in rows)} for system in systems}
            for language, rows in sorted(table.items())
        }
    if split == "test_switch":
        summary["activity_aware"] = {
            system: {name: _mean(r["activity"][system][name] for r in records) for name in ("active_si_sdr", "silent_energy_db")}
            for system in systems
        }
    return summary


def markdown_report(results: dict) -> str:
    """The results as Markdown tables, one per split."""
    lines = [f"# Evaluation of `{results['model']}`", "", f"Data: `{results['data']}`; commit {results.get('commit', '?')}.", ""]
    for split, summary in results["splits"].items():
        names = list(next(iter(summary["systems"].values())))
        lines += [f"## {split} ({summary['examples']} examples)", "", "| system | " + " | ".join(names) + " |",
                  "|---" * (len(names) + 1) + "|"]
        for system, values in summary["systems"].items():
            lines.append(f"| {system} | " + " | ".join(_cell(values[name]) for name in names) + " |")
        if summary.get("fraction_of_oracle") is not None:
            lines += ["", f"Model SI-SDRi = {100 * summary['fraction_of_oracle']:.1f}% of the oracle's."]
        if "si_sdri_by_impairment" in summary:
            ratios = sorted({ratio for row in summary["si_sdri_by_impairment"].values() for ratio in row})
            lines += ["", "Model SI-SDRi (dB) by impairment and impaired ratio:", "",
                      "| impairment | " + " | ".join(ratios) + " |", "|---" * (len(ratios) + 1) + "|"]
            for kind, row in sorted(summary["si_sdri_by_impairment"].items()):
                lines.append(f"| {kind} | " + " | ".join(_cell(row.get(ratio)) for ratio in ratios) + " |")
        if "by_language" in summary:
            systems = list(summary["systems"])
            lines += ["", "SI-SDRi (dB) by language:", "", "| language | " + " | ".join(systems) + " |",
                      "|---" * (len(systems) + 1) + "|"]
            for language, row in summary["by_language"].items():
                lines.append(f"| {language} | " + " | ".join(_cell(row[s]["si_sdri"]) for s in systems) + " |")
        if "wer" in summary:
            lines += ["", "WER of a CTC recogniser: " + ", ".join(f"{system} {100 * wer:.1f}%" for system, wer in summary["wer"].items())]
        if "activity_aware" in summary:
            lines += ["", "| system | SI-SDR where the target speaks (dB) | estimate energy where it is silent, vs. mixture (dB) |",
                      "|---|---|---|"]
            for system, row in summary["activity_aware"].items():
                lines.append(f"| {system} | {_cell(row['active_si_sdr'])} | {_cell(row['silent_energy_db'])} |")
        lines.append("")
    return "\n".join(lines)


def _cell(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def impairment_curve_png(summary: dict, path: str) -> str:
    """SI-SDRi against impaired ratio, one line per impairment type, drawn with PIL."""
    from PIL import Image, ImageDraw

    curves = summary["si_sdri_by_impairment"]
    width, height, margin = 480, 300, 48
    values = [v for row in curves.values() for v in row.values() if v is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    high = high if high > low else low + 1.0
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([margin, 10, width - 10, height - margin], outline="black")
    colours = {"full_mask": (200, 30, 30), "occlusion": (30, 120, 200), "low_resolution": (40, 150, 60)}

    def point(ratio: float, value: float):
        x = margin + ratio * (width - 10 - margin)
        y = height - margin - (value - low) / (high - low) * (height - margin - 20)
        return x, y

    for index, (kind, row) in enumerate(sorted(curves.items())):
        points = [point(float(ratio), value) for ratio, value in sorted(row.items(), key=lambda item: float(item[0])) if value is not None]
        colour = colours.get(kind, (0, 0, 0))
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        draw.text((margin + 8, 14 + 12 * index), kind, fill=colour)
    draw.text((margin, height - margin + 6), "impaired ratio 0 ... 1", fill="black")
    draw.text((4, 10), f"{high:.1f}", fill="black")
    draw.text((4, height - margin - 10), f"{low:.1f}", fill="black")
    draw.text((4, height - 20), "SI-SDRi (dB) of the model by impairment type", fill="black")
    image.save(path)
    return path
