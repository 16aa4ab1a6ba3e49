"""Two extraction models compared mixture by mixture, from the per-example scores `elegance-evaluate` writes.

    python benchmarks/paired_comparison.py --baseline BASELINE_examples.json --candidate CANDIDATE_examples.json
        [--splits test,test_impaired]

Both files must score the same mixtures in the same order (the same ``--data``, splits and ``--max_examples``). For
each split it prints the mean SI-SDRi of each model, the mean difference with its standard error over the mixtures,
on how many mixtures the candidate is better, and the same difference by the registers of the two voices
(``voice_pair``, talker mixtures only).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

import numpy as np


def paired(baseline: list[dict], candidate: list[dict]) -> dict:
    """``{"examples", "baseline", "candidate", "difference", "standard_error", "better", "by_voice_pair"}`` for the
    two models' records of one split (SI-SDRi in dB; ``better`` counts the mixtures where the candidate scores
    higher)."""
    if len(baseline) != len(candidate):
        raise ValueError(
            f"the two evaluations scored {len(baseline)} and {len(candidate)} mixtures: evaluate both models on the "
            "same --data, splits and --max_examples"
        )
    before = np.array([record["model"]["si_sdri"] for record in baseline])
    after = np.array([record["model"]["si_sdri"] for record in candidate])
    difference = after - before
    groups = defaultdict(list)
    for index, record in enumerate(baseline):
        if "voice_pair" in record:
            groups[record["voice_pair"]].append(index)
    return {
        "examples": len(difference),
        "baseline": float(before.mean()),
        "candidate": float(after.mean()),
        "difference": float(difference.mean()),
        "standard_error": float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else None,
        "better": int((difference > 0).sum()),
        "by_voice_pair": {
            pair: {
                "examples": len(rows),
                "baseline": float(before[rows].mean()),
                "candidate": float(after[rows].mean()),
                "difference": float(difference[rows].mean()),
            }
            for pair, rows in sorted(groups.items())
        },
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="the *_examples.json of the baseline's evaluation")
    parser.add_argument("--candidate", required=True, help="the *_examples.json of the candidate's evaluation")
    parser.add_argument("--splits", default=None, help="comma-separated (default: every split both files hold)")
    args = parser.parse_args(argv)
    with open(args.baseline) as stream:
        baseline = json.load(stream)
    with open(args.candidate) as stream:
        candidate = json.load(stream)
    splits = args.splits.split(",") if args.splits else [split for split in baseline if split in candidate]
    for split in splits:
        if split not in baseline or split not in candidate:
            raise SystemExit(
                f"split {split!r} is not in both files (baseline: {list(baseline)}, candidate: {list(candidate)})"
            )
        result = paired(baseline[split], candidate[split])
        error = "" if result["standard_error"] is None else f" ± {result['standard_error']:.2f}"
        print(
            f"{split} ({result['examples']} mixtures): baseline {result['baseline']:.2f} dB, candidate "
            f"{result['candidate']:.2f} dB, difference {result['difference']:+.2f}{error} dB (standard error), "
            f"candidate better on {result['better']} of {result['examples']}"
        )
        for pair, row in result["by_voice_pair"].items():
            print(
                f"  {pair} ({row['examples']}): {row['baseline']:.2f} -> {row['candidate']:.2f} dB "
                f"({row['difference']:+.2f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
