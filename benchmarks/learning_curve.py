"""Learning curves of `elegance-train` runs: validation SI-SDRi against steps and against training minutes, as a PNG.

    python benchmarks/learning_curve.py --run RUN_DIR [--run OTHER_RUN ...] [--label NAME ...] --data data/default
        [--split validation] --out docs/curve.png

Several runs are drawn on the same axes (each labelled by its ``--label``, in order, or by its folder's name); they
must be scored on the same split of the same mixtures, which ``--data`` holds.

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


def plot(curves: dict[str, list[tuple[int, float, float]]], title: str, path: str) -> str:
    """Draws each run's ``(step, minutes, SI-SDRi)`` points, labelled by its key when there are several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for label, points in curves.items():
        steps, minutes, scores = zip(*points)
        for axis, x in ((axes[0], steps), (axes[1], minutes)):
            axis.plot(x, scores, marker="o", markersize=3, label=label)
    for axis, name in ((axes[0], "training steps"), (axes[1], "training minutes (2-core CPU)")):
        axis.set_xlabel(name)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("validation SI-SDRi (dB)")
    if len(curves) > 1:
        axes[0].legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, action="append", help="a run folder; repeat it to compare runs")
    parser.add_argument("--label", action="append", default=[], help="a run's name in the legend, in --run order")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--title", default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.label and len(args.label) != len(args.run):
        raise SystemExit(f"give one --label per --run, or none: {len(args.run)} runs, {len(args.label)} labels")
    labels = args.label or [os.path.basename(os.path.normpath(run)) for run in args.run]
    baseline = mixture_si_sdr(args.data, args.split)
    curves = {}
    for label, run in zip(labels, args.run):
        curves[label] = validation_points(log_history(run), baseline)
        if not curves[label]:
            raise SystemExit(f"{run} logged no evaluation; train with --eval_strategy steps --eval_steps N")
    plot(curves, args.title or " vs. ".join(labels), args.out)
    for label, points in curves.items():
        for step, minutes, score in points:
            print(f"{label}  step {step:>6}  {minutes:7.1f} min  SI-SDRi {score:6.2f} dB")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
