"""Extraction from video and long recordings, written to the "Extraction from video" section of docs/benchmarks.md.

    python benchmarks/bench_video.py --out docs/benchmarks.md [--model pretrained/usev-tiny] [--data data/default]
        [--long_seconds 60,600,3600] [--sections chunking,silent_target]

``--sections`` measures only those subsections and replaces only them, each with its own command line.

- `elegance-extract` on a 60 s two-face video (the GRID two-talker clip of tests/video_fixtures.py, 20 times over):
  time per stage and the whole as a real-time factor.
- Real faces: how much each face's voice resembles its own talker and the other one (|correlation|) on the 3 s
  two-talker clip, against the model given a blank mouth.
- Chunking: per-mixture SI-SDRi of 20 `test_switch` mixtures joined into 60 s, extracted whole and in chunks, and
  the SI-SDR of each chunked estimate against the whole-file one (their agreement).
- Silent target: on `test_switch`, the estimate's energy where the target is silent, relative to the mixture's
  there (the estimate brought to the mixture's scale first).
- Memory: the peak growth of anonymous resident memory during chunked extraction of 60 s, 10 min and 1 h of memory-mapped input
  (benchmarks/long_input_memory.py, one fresh process each).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from bench_report import machine_line, replace_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
SECTION = "## Extraction from video (elegance-extract)"
CHUNKINGS = [(3.0, 1.0), (4.0, 1.0), (6.0, 1.0), (10.0, 1.0)]
SUBSECTIONS = {
    "stages": "Stages",
    "real_faces": "Real faces, a model trained on rendered lips",
    "chunking": "Chunked extraction",
    "silent_target": "Silent target",
    "memory": "Memory of long inputs (chunks of 4 s, overlap 1 s, memory-mapped input)",
}


def _si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    scale = np.dot(estimate, reference) / np.dot(reference, reference)
    return float(10 * np.log10(np.sum((scale * reference) ** 2) / np.sum((estimate - scale * reference) ** 2)))


def _decibels(value: float) -> str:
    # the mixture is the target alone where only the target speaks in test_switch: an infinite SI-SDR
    return "inf (the target alone)" if value == float("inf") else f"{value:.2f} dB"


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return abs(float(np.dot(a[:n], b[:n]) / (np.linalg.norm(a[:n]) * np.linalg.norm(b[:n]))))


def stage_times(model_path: str, folder: str) -> list[str]:
    from video_fixtures import two_talker_video

    from pipelines.cli import run

    video = os.path.join(folder, "two_talkers_60s.mp4")
    two_talker_video(video, repeats=20)
    started = time.perf_counter()
    summary = run([video, "--model", model_path, "--out", os.path.join(folder, "voices")])
    wall = time.perf_counter() - started
    duration = summary["duration_seconds"]
    lines = [
        f"`elegance-extract` on a {duration:.0f} s video of two faces (720 x 288, 25 fps), {len(summary['faces'])} "
        f"face tracks, whole command {wall:.1f} s: **real-time factor {wall / duration:.2f}**.",
        "",
        "| stage | seconds | real-time factor |",
        "|---|---|---|",
    ]
    stages = summary["stage_seconds"]
    lines += [f"| {stage} | {seconds:.2f} | {seconds / duration:.3f} |" for stage, seconds in stages.items()]
    lines.append(f"| other (model loading, geometry) | {wall - sum(stages.values()):.2f} | |")
    return lines


def real_faces(model, processor, folder: str) -> list[str]:
    from video_fixtures import two_talker_video

    from pipelines.chunked_extraction import extract_in_chunks
    from pipelines.video_extraction import extract_from_video

    video = os.path.join(folder, "two_talkers.mp4")
    references = two_talker_video(video)
    result = extract_from_video(video, model, processor)
    blank = extract_in_chunks(model, processor, result.mixture, np.full_like(result.faces[0].mouth_rois, 128))
    lines = [
        "| input | |corr| with the left talker | with the right talker |",
        "|---|---|---|",
    ]
    for face, side in zip(result.faces, ("left", "right")):
        lines.append(
            f"| face {face.face} ({side}) | {_correlation(face.waveform, references['left']):.2f} | "
            f"{_correlation(face.waveform, references['right']):.2f} |"
        )
    lines.append(
        f"| a blank mouth | {_correlation(blank, references['left']):.2f} | {_correlation(blank, references['right']):.2f} |"
    )
    lines.append(
        f"| the mixture | {_correlation(result.mixture, references['left']):.2f} | "
        f"{_correlation(result.mixture, references['right']):.2f} |"
    )
    return lines


def chunking(model, processor, data: str) -> list[str]:
    from datasets import load_from_disk

    from pipelines.chunked_extraction import extract_in_chunks

    examples = load_from_disk(data)["test_switch"].select(range(20))
    mixtures = [np.asarray(example["mixture"], np.float32) for example in examples]
    targets = [np.asarray(example["target"], np.float32) for example in examples]
    mixture, lips = np.concatenate(mixtures), np.concatenate([np.asarray(e["lips"], np.uint8) for e in examples])
    bounds = np.cumsum([0] + [len(m) for m in mixtures])

    def per_mixture_si_sdri(estimate):
        return np.mean(
            [
                _si_sdr(estimate[a:b], target) - _si_sdr(mix, target)
                for a, b, target, mix in zip(bounds[:-1], bounds[1:], targets, mixtures)
            ]
        )

    started = time.perf_counter()
    whole = extract_in_chunks(model, processor, mixture, lips, chunk_seconds=1e6, overlap_seconds=0.0)
    lines = [
        f"20 `test_switch` mixtures joined into {len(mixture) / 16000:.0f} s (the model trained on 3 s segments):",
        "",
        "| chunk / overlap | seconds | mean SI-SDRi of the 20 mixtures | SI-SDR against whole-file |",
        "|---|---|---|---|",
        f"| whole file | {time.perf_counter() - started:.2f} | {per_mixture_si_sdri(whole):.2f} dB | |",
    ]
    for chunk_seconds, overlap_seconds in CHUNKINGS:
        started = time.perf_counter()
        estimate = extract_in_chunks(model, processor, mixture, lips, chunk_seconds, overlap_seconds)
        lines.append(
            f"| {chunk_seconds:g} s / {overlap_seconds:g} s | {time.perf_counter() - started:.2f} | "
            f"{per_mixture_si_sdri(estimate):.2f} dB | {_si_sdr(estimate, whole):.1f} dB |"
        )
    return lines


def silent_target(model, processor, data: str) -> list[str]:
    from training.data import load_split
    from training.evaluation.report import summarize
    from training.evaluation.scoring import ExtractionEvaluator

    records = ExtractionEvaluator(model, processor, perceptual=False).score_examples(load_split(data, "test_switch"))
    activity = summarize(records)["activity_aware"]
    return [
        f"On the {len(records)} `test_switch` mixtures (the target speaks in part of each):",
        "",
        "| system | SI-SDR where the target speaks | energy where it is silent, vs. the mixture |",
        "|---|---|---|",
        *(
            f"| {system} | {_decibels(row['active_si_sdr'])} | {_decibels(row['silent_energy_db'])} |"
            for system, row in activity.items()
        ),
    ]


def memory(model_path: str, durations: list[float], folder: str) -> list[str]:
    lines = [
        "| input | peak memory growth during extraction (anonymous) | wall time | real-time factor |",
        "|---|---|---|---|",
    ]
    for seconds in durations:
        child = os.path.join(folder, f"long-{int(seconds)}")
        os.makedirs(child, exist_ok=True)
        output = subprocess.run(
            [sys.executable, os.path.join(ROOT, "benchmarks", "long_input_memory.py"), str(seconds), child, model_path],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ, OMP_NUM_THREADS="1"),
        ).stdout
        measured = json.loads(output.strip().splitlines()[-1])
        label = f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
        lines.append(
            f"| {label} | {measured['peak_growth_kib'] / 1024:.0f} MB | {measured['wall_seconds']:.0f} s | "
            f"{measured['wall_seconds'] / seconds:.3f} |"
        )
        for name in ("mixture.npy", "lips.npy"):
            os.remove(os.path.join(child, name))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--model", default=os.path.join(ROOT, "pretrained", "usev-tiny"))
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "default"))
    parser.add_argument("--long_seconds", default="60,600,3600")
    parser.add_argument("--sections", default=",".join(SUBSECTIONS), help=f"any of {','.join(SUBSECTIONS)}")
    args = parser.parse_args(argv)
    chosen = args.sections.split(",")
    unknown = sorted(set(chosen) - set(SUBSECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SUBSECTIONS)}")
    from transformers import AutoModel, AutoProcessor

    import modeling_elegance  # noqa: F401
    import processing  # noqa: F401

    model, processor = AutoModel.from_pretrained(args.model).eval(), AutoProcessor.from_pretrained(args.model)
    durations = [float(seconds) for seconds in args.long_seconds.split(",")]
    measure = {
        "stages": lambda folder: stage_times(args.model, folder),
        "real_faces": lambda folder: real_faces(model, processor, folder),
        "chunking": lambda folder: chunking(model, processor, args.data),
        "silent_target": lambda folder: silent_target(model, processor, args.data),
        "memory": lambda folder: memory(args.model, durations, folder),
    }
    with tempfile.TemporaryDirectory() as folder:
        sections = [(name, SUBSECTIONS[name], measure[name](folder)) for name in SUBSECTIONS if name in chosen]
    command = "python benchmarks/bench_video.py --out docs/benchmarks.md"
    where = f"({machine_line()}, {torch.get_num_threads()} threads; model `{os.path.relpath(args.model, ROOT)}`)"
    if len(chosen) == len(SUBSECTIONS):
        body = [SECTION, "", f"Command: `{command}` {where}."]
        for _, title, lines in sections:
            body += ["", f"### {title}", "", *lines]
        texts = [(SECTION, "\n".join(body), 2)]
    else:
        texts = [
            (
                f"### {title}",
                "\n".join([f"### {title}", "", f"Command: `{command} --sections {name}` {where}.", "", *lines]),
                3,
            )
            for name, title, lines in sections
        ]
    for title, text, level in texts:
        print(text)
        if args.out:
            replace_section(args.out, title, text + ("\n" if level == 3 else ""), level=level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
