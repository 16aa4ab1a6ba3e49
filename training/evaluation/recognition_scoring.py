"""Recognition scores of an audio-visual recogniser (AVUR-LLM's first stage): WER and CER of its transcripts of
each split's mixtures, with the lips (``av``) and without them (``audio_only``: exactly the Whisper inside, so the
zero-shot baseline of the same weights), and of the clean targets with the lips (``clean``, the floor); per SNR
and per noise type on a split in noise. With an extraction model (``extractor``), also of its estimate of the
target with the lips (``extracted``): on a split of talker mixtures, the target's words by extraction then
recognition, against recognition of the raw mixture (``av``). With a visual-unit refinement (the second stage,
:class:`~training.visual_unit_refinement.VisualUnitRefinement`), also the beam search's first choice (``av_beam``)
and the N-best rescored by visual units (``av_vur``), both with the lips. With ``lips_control``, also the mixture
with the lips of another clip of the batch (``av_other_lips``): what the model gains from the lips themselves,
rather than from the extra weights that read them, is the gap between ``av`` and this."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from processing.output_scaling import scale_to_mixture

from .metrics import character_error_rate, word_error_rate
from .recognition import max_new_tokens_for
from .report import markdown_table
from .scoring import extract_batch, iterate_batches

SYSTEMS = ("av", "audio_only", "clean", "av_other_lips", "extracted", "av_beam", "av_vur")


def audio_inputs(processor, audio, lips, audio_states=None) -> tuple[dict, dict]:
    """``(processor outputs, what replaces the audio in generate)``: Whisper's ``input_features``, or with
    ``audio_states`` (a :class:`~training.whisper_state_cache.WhisperStateCache`) the frozen encoder's cached
    states of these clips, which are then not encoded again."""
    inputs = processor(audio=audio, videos=lips, return_tensors="pt", audio_features=audio_states is None)
    if audio_states is None:
        return inputs, {"input_features": inputs["input_features"]}
    return inputs, {"audio_states": audio_states(audio)}


def transcribe(model, processor, audio, lips, num_beams: int = 1, audio_states=None) -> list[str]:
    """Greedy (or beam) transcripts of ``audio`` with ``lips`` (None: audio only)."""
    inputs, audio_input = audio_inputs(processor, audio, lips, audio_states)
    device = next(model.parameters()).device
    seconds = max(len(waveform) for waveform in audio) / processor.feature_extractor.sampling_rate
    with torch.inference_mode():
        ids = model.generate(
            **{name: value.to(device) for name, value in audio_input.items()},
            attention_mask=inputs["attention_mask"].to(device),
            lip_frames=None if lips is None else inputs["lip_frames"].to(device),
            video_attention_mask=None if lips is None else inputs["video_attention_mask"].to(device),
            num_beams=num_beams,
            do_sample=False,
            max_new_tokens=max_new_tokens_for(seconds),
        )
    return processor.batch_decode(ids)


def extracted_speech(extractor, extractor_processor, rows: dict, mixtures: list[np.ndarray]) -> list[np.ndarray]:
    """The extraction model's estimate of each mixture's target, cut to the mixture's length and brought to its
    scale (an SI-SDR-trained model leaves the level free, and Whisper's log-mel features depend on it)."""
    estimates = extract_batch(extractor, extractor_processor, rows)
    return [scale_to_mixture(estimates[row, : len(mixture)].numpy(), mixture) for row, mixture in enumerate(mixtures)]


def score_recognition(
    model,
    processor,
    dataset,
    num_beams: int = 1,
    batch_size: int = 8,
    extractor=None,
    extractor_processor=None,
    refinement=None,
    audio_states=None,
    lips_control: bool = False,
) -> dict:
    """``{"wer": {system: rate}, "cer": {...}, "examples": n}``, plus ``by_snr`` and ``by_noise`` (WER per SNR, and
    per noise type and SNR) on a split in noise. The ``extracted`` system is scored when ``extractor`` (an extraction
    model, with its processor) is given; ``av_beam`` and ``av_vur`` when ``refinement`` is. ``audio_states``: a
    :class:`~training.whisper_state_cache.WhisperStateCache` of the model, to encode each clip once. ``av_other_lips``
    is scored with ``lips_control`` (each clip gets the lips of the next clip of its batch; batches of at least 2)."""
    if lips_control and batch_size < 2:
        raise ValueError("the lips control gives each clip the lips of another clip of its batch: use batch_size >= 2")
    transcripts, references, conditions = defaultdict(list), [], []
    for rows in iterate_batches(dataset, batch_size):
        mixtures = [np.asarray(wave, dtype=np.float32) for wave in rows["mixture"]]
        lips = list(rows["lips"])
        targets = [np.asarray(wave, dtype=np.float32) for wave in rows["target"]]
        transcripts["av"] += transcribe(model, processor, mixtures, lips, num_beams, audio_states)
        transcripts["audio_only"] += transcribe(model, processor, mixtures, None, num_beams, audio_states)
        transcripts["clean"] += transcribe(model, processor, targets, lips, num_beams, audio_states)
        if lips_control:
            other_lips = lips[1:] + lips[:1] if len(lips) > 1 else lips  # a lone last clip keeps its own
            transcripts["av_other_lips"] += transcribe(model, processor, mixtures, other_lips, num_beams, audio_states)
        if extractor is not None:
            estimates = extracted_speech(extractor, extractor_processor, rows, mixtures)
            transcripts["extracted"] += transcribe(model, processor, estimates, lips, num_beams, audio_states)
        if refinement is not None:
            rescored, beam_first = refinement(model, processor, mixtures, lips, audio_states)
            transcripts["av_vur"] += rescored
            transcripts["av_beam"] += beam_first
        references += [str(text) for text in rows["transcript"]]
        kinds = rows.get("noise_type", ["none"] * len(mixtures))
        snrs = rows.get("snr_db", [float("nan")] * len(mixtures))
        conditions += [(str(kind), float(snr)) for kind, snr in zip(kinds, snrs)]
    systems = [system for system in SYSTEMS if system in transcripts]
    result = {
        "examples": len(references),
        "wer": {system: word_error_rate(transcripts[system], references) for system in systems},
        "cer": {system: character_error_rate(transcripts[system], references) for system in systems},
    }
    noisy = [kind != "none" for kind, _ in conditions]
    if any(noisy):

        def wer_where(keep) -> dict:
            chosen = [i for i, condition in enumerate(conditions) if keep(condition)]
            return {
                system: word_error_rate([transcripts[system][i] for i in chosen], [references[i] for i in chosen])
                for system in systems
            }

        snrs = sorted({snr for kind, snr in conditions if kind != "none"})
        kinds = sorted({kind for kind, _ in conditions if kind != "none"})
        result["by_snr"] = {f"{snr:g}": wer_where(lambda c, snr=snr: c[1] == snr) for snr in snrs}
        result["by_noise"] = {
            kind: {f"{snr:g}": wer_where(lambda c, kind=kind, snr=snr: c == (kind, snr))["av"] for snr in snrs}
            for kind in kinds
        }
    return result


def recognition_report(results: dict) -> str:
    """The recognition results as Markdown: WER and CER per split and system with the relative WER reduction of
    the lips over audio only, and WER per SNR on a split in noise."""
    lines = [
        f"# Recognition by `{results['model']}`",
        "",
        f"Data: `{results['data']}`; commit {results.get('commit')}.",
    ]
    systems = [s for s in SYSTEMS if any(s in summary["wer"] for summary in results["splits"].values())]
    rows = []
    for split, summary in results["splits"].items():
        wer, cer = summary["wer"], summary["cer"]
        reduction = 1 - wer["av"] / wer["audio_only"] if wer["audio_only"] else float("nan")
        rows.append(
            [split, str(summary["examples"]), *(_percent(wer.get(s)) for s in systems)]
            + [*(_percent(cer.get(s)) for s in systems), f"{100 * reduction:.1f}%"]
        )
    header = ["split", "examples", *(f"WER {s}" for s in systems), *(f"CER {s}" for s in systems)]
    lines += markdown_table(None, [*header, "WER reduction by the lips"], rows)
    for split, summary in results["splits"].items():
        if "by_snr" in summary:
            lines += markdown_table(
                f"{split}, WER by SNR (dB):",
                ["SNR", *systems],
                [[snr, *(_percent(row.get(s)) for s in systems)] for snr, row in summary["by_snr"].items()],
            )
    return "\n".join(lines) + "\n"


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"
