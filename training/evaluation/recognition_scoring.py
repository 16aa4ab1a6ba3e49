"""Recognition scores of an audio-visual recogniser (AVUR-LLM's first stage): WER and CER of its transcripts of
each split's mixtures, with the lips (``av``) and without them (``audio_only``: exactly the Whisper inside, so the
zero-shot baseline of the same weights), and of the clean targets with the lips (``clean``, the floor); per SNR
and per noise type on a split in noise."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from .metrics import character_error_rate, word_error_rate
from .recognition import max_new_tokens_for
from .report import markdown_table
from .scoring import iterate_batches

SYSTEMS = ("av", "audio_only", "clean")


def transcribe(model, processor, audio, lips, num_beams: int = 1) -> list[str]:
    """Greedy (or beam) transcripts of ``audio`` with ``lips`` (None: audio only)."""
    inputs = processor(audio=audio, videos=lips, return_tensors="pt")
    device = next(model.parameters()).device
    seconds = max(len(waveform) for waveform in audio) / processor.feature_extractor.sampling_rate
    with torch.inference_mode():
        ids = model.generate(
            inputs["input_features"].to(device),
            attention_mask=inputs["attention_mask"].to(device),
            lip_frames=None if lips is None else inputs["lip_frames"].to(device),
            video_attention_mask=None if lips is None else inputs["video_attention_mask"].to(device),
            num_beams=num_beams,
            do_sample=False,
            max_new_tokens=max_new_tokens_for(seconds),
        )
    return processor.batch_decode(ids)


def score_recognition(model, processor, dataset, num_beams: int = 1, batch_size: int = 8) -> dict:
    """``{"wer": {system: rate}, "cer": {...}, "examples": n}``, plus ``by_snr`` and ``by_noise`` (WER per SNR, and
    per noise type and SNR) on a split in noise."""
    transcripts, references, conditions = defaultdict(list), [], []
    for rows in iterate_batches(dataset, batch_size):
        mixtures = [np.asarray(wave, dtype=np.float32) for wave in rows["mixture"]]
        lips = list(rows["lips"])
        transcripts["av"] += transcribe(model, processor, mixtures, lips, num_beams)
        transcripts["audio_only"] += transcribe(model, processor, mixtures, None, num_beams)
        transcripts["clean"] += transcribe(model, processor, list(rows["target"]), lips, num_beams)
        references += [str(text) for text in rows["transcript"]]
        kinds = rows.get("noise_type", ["none"] * len(mixtures))
        snrs = rows.get("snr_db", [float("nan")] * len(mixtures))
        conditions += [(str(kind), float(snr)) for kind, snr in zip(kinds, snrs)]
    result = {
        "examples": len(references),
        "wer": {system: word_error_rate(transcripts[system], references) for system in SYSTEMS},
        "cer": {system: character_error_rate(transcripts[system], references) for system in SYSTEMS},
    }
    noisy = [kind != "none" for kind, _ in conditions]
    if any(noisy):

        def wer_where(keep) -> dict:
            chosen = [i for i, condition in enumerate(conditions) if keep(condition)]
            return {
                system: word_error_rate([transcripts[system][i] for i in chosen], [references[i] for i in chosen])
                for system in SYSTEMS
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
    rows = []
    for split, summary in results["splits"].items():
        wer, cer = summary["wer"], summary["cer"]
        reduction = 1 - wer["av"] / wer["audio_only"] if wer["audio_only"] else float("nan")
        rows.append(
            [split, str(summary["examples"]), *(f"{100 * wer[s]:.1f}%" for s in SYSTEMS)]
            + [*(f"{100 * cer[s]:.1f}%" for s in SYSTEMS), f"{100 * reduction:.1f}%"]
        )
    header = ["split", "examples", *(f"WER {s}" for s in SYSTEMS), *(f"CER {s}" for s in SYSTEMS)]
    lines += markdown_table(None, [*header, "WER reduction by the lips"], rows)
    for split, summary in results["splits"].items():
        if "by_snr" in summary:
            lines += markdown_table(
                f"{split}, WER by SNR (dB):",
                ["SNR", *SYSTEMS],
                [[snr, *(f"{100 * row[s]:.1f}%" for s in SYSTEMS)] for snr, row in summary["by_snr"].items()],
            )
    return "\n".join(lines) + "\n"
