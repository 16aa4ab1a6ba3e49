"""Learning curve of an `elegance-train` run: validation SI-SDRi against steps and against training minutes, as a PNG.

    python benchmarks/learning_curve.py --run RUN_DIR --data data/default [--split validation] --out docs/curve.png

The run must evaluate periodically (``--eval_strategy steps``): its evaluation loss is the mean negative SI-SDR of
the estimates (``--loss si_sdr``), so the mean SI-SDRi is ``-eval_loss_extraction`` minus the mean SI-SDR of the
split's mixtures, computed here. Times are the run's own ``wall_minutes`` (summed across resumes).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np


def log_history(run: str) -> list[dict]:
    """The log of the run, or of its newest checkpoint while it is still training."""
    paths = [os.path.join(run, "trainer_state.json")] + sorted(
        glob.glob(os.path.join(run, "checkpoint-*", "trainer_state.json")),
        key=lambda p: int(p.split("-")[-1].split("/")[0]),
    )[::-1]
    for path in paths:
        if os.path.isfile(path):
            with open(path) as stream:
                return json.load(stream)["log_history"]
    raise FileNotFoundError(f"{run} has no trainer_state.json (neither finished nor checkpointed yet)")


def mixture_si_sdr(data: str, split: str) -> float:
    from datasets import load_from_disk

    from training.evaluation.metrics import si_sdr

    rows = load_from_disk(data)[split].with_format("numpy")
    return float(np.nanmean([si_sdr(row["mixture"][None], row["target"][None])[0] for row in rows]))


def validation_points(history: list[dict], baseline: float) -> list[tuple[int, float, float]]:
    """``(step, minutes, SI-SDRi)`` for every evaluation of the run."""
    return [
        (entry["step"], entry.get("wall_minutes", float("nan")), -entry["eval_loss_extraction"] - baseline)
        for entry in history
        if "eval_loss_extraction" in entry
    ]


def plot(points, title: str, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, minutes, scores = zip(*points)
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for axis, x, label in ((axes[0], steps, "training steps"), (axes[1], minutes, "training minutes (2-core CPU)")):
        axis.plot(x, scores, marker="o", markersize=3)
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("validation SI-SDRi (dB)")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--title", default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    points = validation_points(log_history(args.run), mixture_si_sdr(args.data, args.split))
    if not points:
        raise SystemExit(f"{args.run} logged no evaluation; train with --eval_strategy steps --eval_steps N")
    plot(points, args.title or os.path.basename(os.path.normpath(args.run)), args.out)
    for step, minutes, score in points:
        print(f"step {step:>6}  {minutes:7.1f} min  SI-SDRi {score:6.2f} dB")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
