"""Cost of AVUR-LLM's two stages on this CPU, written to the "Audio-visual speech recognition" section of
docs/benchmarks.md.

    python benchmarks/bench_avsr.py --out docs/benchmarks.md [--model runs/avsr/avsr] [--data data/default] [--clips 8]

- Stage 1: the AV recogniser, decoding `--clips` test clips of 3 s one at a time, greedy and with a beam of 5:
  real-time factor (seconds of compute per second of speech), and the training step (forward + backward of the
  new blocks, batch 8). `--model`: a trained recogniser (`elegance-train-avsr`'s OUTPUT_DIR/avsr); without it, one
  built on the offline Whisper tiny.en and the shipped lip reader with untrained blocks, which transcribes exactly
  as the zero-shot Whisper does (AMF's gate starts closed; its transcripts of the first 8 test mixtures stop at their
  end token after 6 to 14 tokens), with the compute of the trained model.
- Stage 2: the visual-unit rescorer on elegance-train-vur's default LM, the offline Whisper tiny.en's decoder (LoRA
  rank 8), scoring an N-best of 5 and of 10 hypotheses for one clip: seconds per utterance.
- k-means of the visual units: MiniBatchKMeans with K = 256 on the lip encoder's front-end features of the
  training clips (all frames of `--kmeans_clips` clips).
- Memory: the process's resident size once the recogniser is loaded, its peak during the first greedy decode
  (sampled every 2 ms), and the peak growth of one rescoring of 10.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
from bench_report import machine_line, peak_growth_mb, replace_section, resident_mb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SECTION = "## Audio-visual speech recognition (AVUR-LLM)"


def timed(function, repeats: int = 1) -> float:
    """Median wall time of ``function()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None)
    parser.add_argument("--model", default=None, help="a trained recogniser folder (default: untrained blocks)")
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "default"))
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--kmeans_clips", type=int, default=400)
    args = parser.parse_args(argv)

    from datasets import load_from_disk

    from modeling_elegance import AvurForConditionalGeneration
    from modeling_elegance.visual_unit_rescorer import VisualUnitRescorer
    from modeling_elegance.visual_units import VisualUnitQuantizer
    from processing import AvurProcessor
    from training.language_model import load_causal_language_model
    from training.offline_whisper import offline_whisper
    from training.visual_unit_refinement import mid_layer_features

    if args.model:
        model = AvurForConditionalGeneration.from_pretrained(args.model)
        processor = AvurProcessor.from_pretrained(args.model)
    else:
        whisper = offline_whisper()
        model = AvurForConditionalGeneration.from_whisper(
            whisper, lip_reader=os.path.join(ROOT, "pretrained", "lip-reader")
        )
        processor = AvurProcessor.from_whisper(whisper, lip_roi_size=model.config.lip_roi_size)
    model.eval()
    corpus = load_from_disk(args.data)
    test = corpus["test"].with_format("numpy").select(range(args.clips))
    seconds = sum(len(example["mixture"]) for example in test) / 16000
    loaded = resident_mb()
    example = test[0]
    inputs = processor(audio=[example["mixture"]], videos=[example["lips"]], return_tensors="pt")

    def one_decode():
        with torch.inference_mode():
            model.generate(**{name: inputs[name] for name in processor.model_input_names}, max_new_tokens=26)

    first_decode = loaded + peak_growth_mb(one_decode)  # the first call allocates what later calls reuse
    rows = []

    def decode(num_beams: int):
        def run():
            for example in test:
                inputs = processor(audio=[example["mixture"]], videos=[example["lips"]], return_tensors="pt")
                with torch.inference_mode():
                    model.generate(
                        **{name: inputs[name] for name in processor.model_input_names},
                        num_beams=num_beams,
                        max_new_tokens=26,
                    )

        return run

    for beams in (1, 5):
        elapsed = timed(decode(beams))
        rows.append(
            (f"stage 1 decoding, {'greedy' if beams == 1 else f'beam {beams}'}", f"{elapsed / seconds:.2f} RTF")
        )
    batch = processor(
        audio=[example["mixture"] for example in test][:8],
        videos=[example["lips"] for example in test][:8],
        text=[str(example["transcript"]) for example in test][:8],
        return_tensors="pt",
    )
    model.train()
    for parameter in [*model.whisper.parameters(), *model.lip_encoder.parameters()]:
        parameter.requires_grad_(False)

    def step():
        model(**{name: batch[name] for name in (*processor.model_input_names, "labels")}).loss.backward()

    step()
    rows.append(
        (f"stage 1 training step (batch {len(batch['labels'])}, forward + backward)", f"{timed(step, 3):.2f} s")
    )
    model.eval()

    language_model, tokenizer, new = load_causal_language_model(offline_whisper())  # elegance-train-vur's default
    rescorer = VisualUnitRescorer(language_model, tokenizer, 256, lora_rank=8, keep_trainable=new).eval()
    units = list(np.random.default_rng(0).integers(0, 256, 75))
    for n in (5, 10):
        hypotheses = [f"{test[0]['transcript']} {'again ' * i}".strip() for i in range(n)]
        with torch.inference_mode():
            elapsed = timed(lambda hypotheses=hypotheses: rescorer.score(units, hypotheses), 3)
        rows.append((f"stage 2 rescoring of an N-best of {n}", f"{elapsed:.3f} s per utterance"))

    train = corpus["train"].with_format("numpy").select(range(min(args.kmeans_clips, len(corpus["train"]))))
    features = []
    for start in range(0, len(train), 16):
        clips = [train[i]["lips"] for i in range(start, min(start + 16, len(train)))]
        lips = processor.lip_feature_extractor(clips, return_tensors="pt")
        features += mid_layer_features(model, lips["lip_frames"], lips["video_attention_mask"])
    frames = sum(len(f) for f in features)
    started = time.perf_counter()
    VisualUnitQuantizer.fit(features, 256, seed=0)
    rows.append(
        (
            f"k-means, K = 256, on {frames:,} frames of {features[0].shape[1]}-d features",
            f"{time.perf_counter() - started:.1f} s",
        )
    )

    rows.append(("resident memory, recogniser loaded", f"{loaded:.0f} MB"))
    rows.append(("peak resident memory, first greedy decode", f"{first_decode:.0f} MB"))
    with torch.inference_mode():
        rows.append(
            (
                "peak memory growth, one rescoring of 10",
                f"{peak_growth_mb(lambda: rescorer.score(units, hypotheses)):.0f} MB",
            )
        )

    recogniser = (
        f"the trained recogniser `{os.path.relpath(args.model, ROOT)}`"
        if args.model
        else "Whisper tiny.en (offline) + the shipped lip reader + SMA and AMF, untrained"
    )
    command = "python benchmarks/bench_avsr.py --out docs/benchmarks.md" + (
        f" --model {os.path.relpath(args.model, ROOT)}" if args.model else ""
    )
    command += f" --clips {args.clips} --kmeans_clips {args.kmeans_clips}"
    body = "\n".join(
        [
            SECTION,
            "",
            f"Command: `{command}` ({machine_line()}, "
            f"{torch.get_num_threads()} threads). Stage 1: {recogniser}, {args.clips} test clips of 3 s "
            f"({seconds:.0f} s of speech) decoded one at a time; stage 2: "
            "the offline Whisper tiny.en's decoder as the LM, with LoRA rank 8 and 256 unit tokens.",
            "",
            "| what | cost |",
            "|---|---|",
            *(f"| {what} | {cost} |" for what, cost in rows),
            "",
            "The training step here runs Whisper's encoder on the batch; `elegance-train-avsr` caches the frozen "
            'encoder\'s states by default and skips it (its step times: README, "Audio-visual speech recognition").',
            "",
        ]
    )
    print(body)
    if args.out:
        replace_section(args.out, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
