"""Corpus generation speed: examples and utterances (audio + lips) per second, by preset and worker count.

    python benchmarks/bench_corpus_generation.py --out docs/benchmarks.md

Generates the validation, test and test_3mix splits of a preset into a temporary folder, once per worker count,
and writes a Markdown table (replacing the section of the same title in --out).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from bench_report import machine_line, replace_section

from processing.corpus_generation import CORPUS_PRESETS, generate_corpus

SECTION = "## Corpus generation"


def measure(preset: str, workers: int, splits: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        stats = generate_corpus(
            os.path.join(folder, "corpus"), preset=preset, num_workers=workers, splits=splits, log=lambda m: None
        )
        wall = time.perf_counter() - started
    examples = sum(entry["examples"] for entry in stats["splits"].values())
    utterances = sum(entry["utterances"] for entry in stats["splits"].values())
    return {"examples": examples, "utterances": utterances, "seconds": wall}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "default"], choices=sorted(CORPUS_PRESETS))
    parser.add_argument("--workers", nargs="+", type=int, default=[1, os.cpu_count() or 1])
    parser.add_argument("--splits", nargs="+", default=["validation", "test", "test_3mix"])
    parser.add_argument("--out", default=None, help="Markdown file whose corpus-generation section is replaced")
    args = parser.parse_args()

    rows = []
    for preset in args.presets:
        for workers in sorted(set(args.workers)):
            result = measure(preset, workers, args.splits)
            rows.append(
                f"| {preset} | {CORPUS_PRESETS[preset].roi_size} | {workers} | {result['examples']} | {result['seconds']:.1f} | "
                f"{result['examples'] / result['seconds']:.1f} | {result['utterances'] / result['seconds']:.1f} |"
            )
            print(rows[-1], flush=True)
    body = (
        f"{SECTION}\n\n"
        f"Command: `python benchmarks/bench_corpus_generation.py --out docs/benchmarks.md` ({machine_line()}). Splits {', '.join(args.splits)}; wall time "
        f"includes writing the Arrow files. An utterance is one synthesised voice (a target with its rendered lips, or an "
        f"interferer).\n\n"
        "| preset | ROI px | workers | examples | seconds | examples/s | utterances/s |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    if args.out:
        replace_section(args.out, SECTION, body)
    print(body)


if __name__ == "__main__":
    main()
