"""How far an ideal ratio mask gets on STFTs of several window sizes, by the registers of the two voices.

    python benchmarks/oracle_by_voice_pair.py --data data/default --split test \
        [--windows 40/20,80/40,256/64,512/128] [--examples outputs/runs/RUN-evaluation_examples.json]

For each talker mixture of the split, the ideal ratio mask ``|T| / (|T| + |I|)`` (target and interferer spectra,
Hann window) on the mixture's STFT, inverted, scored in SI-SDRi; rows are grouped by the voice pair ("high-low":
a high target voice and a low interferer, see :func:`processing.pitch.voice_register`). With ``--examples`` (the
per-example scores `elegance-evaluate` writes next to its JSON) the model's own SI-SDRi is a row of the table too.

It asks whether a voice pair is hard for any mask or only for a model's front-end: a short window (the learned
encoders' 80 samples) cannot resolve the harmonics of a high voice, a 512-point one can.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def ideal_ratio_mask_estimate(mixture: np.ndarray, target: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``(samples,)``: the mixture's STFT masked by ``|T| / (|T| + |I|)`` and inverted (float64 throughout)."""
    window = torch.hann_window(n_fft, dtype=torch.float64)

    def spectrum(signal):
        return torch.stft(torch.from_numpy(signal), n_fft, hop, window=window, return_complex=True)

    mixed, wanted = spectrum(mixture), spectrum(target)
    rest = spectrum(mixture - target)
    mask = wanted.abs() / (wanted.abs() + rest.abs()).clamp_min(1e-12)
    return torch.istft(mixed * mask, n_fft, hop, window=window, length=len(mixture)).numpy()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a corpus folder written by elegance-data")
    parser.add_argument("--split", default="test")
    parser.add_argument("--windows", default="40/20,80/40,256/64,512/128", help="STFT sizes as n_fft/hop, in samples")
    parser.add_argument("--examples", default=None, help="elegance-evaluate's STEM_examples.json, for a model row")
    args = parser.parse_args(argv)
    from datasets import load_from_disk

    from processing.pitch import voice_register
    from training.evaluation.metrics import improvement, si_sdr

    windows = [tuple(int(size) for size in window.split("/")) for window in args.windows.split(",")]
    examples = load_from_disk(args.data)[args.split].with_format("numpy")
    model_scores = None
    if args.examples:
        model_scores = [record["model"]["si_sdri"] for record in json.load(open(args.examples))[args.split]]
        if len(model_scores) != len(examples):
            raise SystemExit(
                f"{args.examples} scores {len(model_scores)} examples of {args.split}, the corpus has {len(examples)}"
            )
    scores = defaultdict(list)  # (row name, voice pair) -> SI-SDRi
    for index, example in enumerate(examples):
        mixture, target = example["mixture"].astype(np.float64), example["target"].astype(np.float64)
        rate = int(example["sampling_rate"])
        pair = f"{voice_register(target, rate)}-{voice_register(np.asarray(example['interferers'][0]), rate)}"
        for n_fft, hop in windows:
            estimate = ideal_ratio_mask_estimate(mixture, target, n_fft, hop)
            scores[(f"ideal ratio mask, STFT {n_fft} / {hop}", pair)].append(
                improvement(si_sdr, estimate, mixture, target)[0]
            )
        if model_scores is not None:
            scores[("the model", pair)].append(model_scores[index])
    pairs = sorted({pair for _, pair in scores})
    rows = list(dict.fromkeys(name for name, _ in scores))
    counts = {pair: len(scores[(rows[0], pair)]) for pair in pairs}
    print(f"SI-SDRi (dB) on `{args.split}` by voice pair (target-interferer; mixtures in brackets):\n")
    print("| | " + " | ".join(f"{pair} ({counts[pair]})" for pair in pairs) + " | all |")
    print("|---" * (len(pairs) + 2) + "|")
    for name in rows:
        everything = [value for pair in pairs for value in scores[(name, pair)]]
        cells = [f"{np.mean(scores[(name, pair)]):.2f}" for pair in pairs]
        print(f"| {name} | " + " | ".join(cells) + f" | {np.mean(everything):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
