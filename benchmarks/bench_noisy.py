"""CMKT in its own setting (`make benchmark-noisy`): audio-only speech enhancement in noise, unguided against CMKT,
written to its own top-level part of docs/results.md ("# CMKT on speech in noise"), beside the guidance benchmark's.

    python benchmarks/bench_noisy.py --out docs/results.md [--max_steps 3000] [--seeds 0,1,2] [--jobs 2]

Each run trains an audio-only backbone (`usev-se-tiny`, `av-mamba-se-tiny`) on `train_noisy` of the noisy corpus
(`make data-noisy`), with dynamic mixing in noise (new noise at -5 to 15 dB SNR every step) and `elegance-train`'s
default optimiser settings, unguided or with CMKT, and scores it on `test_noisy` (3 noise types x 5 SNRs):
SI-SDRi, PESQ and STOI per SNR, and the offline Whisper's WER per SNR for the runs of `--asr_seeds` (WER costs
about 7 minutes a run on 2 cores). The CMKT paper's open question, the misalignment shift, is swept on
`usev-se-tiny` at one seed: `--cmkt_max_shift` 0, 1, 2 (the default, shared with the main runs) and 4 tokens.

Like bench_quality.py (whose machinery it uses), a finished run is never redone and an interrupted one resumes.
Each run is claimed by a lock file (``WORKDIR/locks``) while it trains and is scored, so two invocations on the same
workdir share the plan: each skips the runs the other holds (e.g. a second one-thread lane started later).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from bench_quality import ROOT, mean_std, run
from bench_report import machine_line, replace_section, write_text_atomically

BACKBONES = ["usev-se-tiny", "av-mamba-se-tiny"]
SHIFTS = [0, 1, 2, 4]
DEFAULT_SHIFT = 2  # elegance-train's --cmkt_max_shift


def plan(args) -> list[tuple[str, str, int, int]]:
    """(backbone, guidance, shift, seed), seed by seed, then the shift sweep."""
    seeds = [int(seed) for seed in args.seeds.split(",")]
    runs = [(b, g, DEFAULT_SHIFT, s) for s in seeds for b in BACKBONES for g in ("none", "cmkt")]
    return runs + [("usev-se-tiny", "cmkt", shift, seeds[0]) for shift in SHIFTS if shift != DEFAULT_SHIFT]


def run_name(backbone: str, guidance: str, shift: int, seed: int) -> str:
    return f"{backbone}-{guidance}" + (f"-shift{shift}" if guidance == "cmkt" else "") + f"-s{seed}"


@contextmanager
def claimed(lock_path: str):
    """True inside if this process holds ``lock_path`` (an exclusive `flock`, released on exit, also when the process
    dies), False if another invocation holds it."""
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def train_and_evaluate(args, backbone, guidance, shift, seed) -> dict | None:
    name = run_name(backbone, guidance, shift, seed)
    result_path = os.path.join(args.workdir, "results", f"{name}.json")
    if os.path.exists(result_path):
        with open(result_path) as stream:
            return json.load(stream)
    with claimed(os.path.join(args.workdir, "locks", f"{name}.lock")) as ours:
        if not ours:
            print(f"{name}: held by another invocation; skipped here", flush=True)
            return None
        if os.path.exists(result_path):  # finished by another invocation since the check above
            with open(result_path) as stream:
                return json.load(stream)
        return _train_and_evaluate(args, name, backbone, guidance, shift, seed, result_path)


def _train_and_evaluate(args, name, backbone, guidance, shift, seed, result_path) -> dict | None:
    started, run_dir = time.time(), os.path.join(args.workdir, "runs", name)
    log = os.path.join(args.workdir, "logs", f"{name}.log")
    export = os.path.join(run_dir, "guidance-free")
    try:
        if not os.path.isfile(os.path.join(export, "model.safetensors")):
            flags = ["--backbone", backbone, "--data", args.data, "--guidance", guidance, "--output_dir", run_dir]
            flags += ["--train_split", "train_noisy", "--eval_split", "none", "--max_steps", str(args.max_steps)]
            flags += ["--seed", str(seed), "--save_steps", "250", "--logging_steps", "50", "--disable_tqdm", "true"]
            flags += ["--resume_from_checkpoint", "last", "--embedding_cache_dir", os.path.join(args.workdir, "cache")]
            flags += ["--cmkt_max_shift", str(shift)] if guidance == "cmkt" else []
            run([sys.executable, "-m", "training.train", *flags], log)
        out = os.path.join(args.workdir, "evaluations", f"{name}.json")
        asr = "offline" if str(seed) in args.asr_seeds.split(",") and shift == DEFAULT_SHIFT else "none"
        flags = ["--model", export, "--data", args.data, "--splits", "test_noisy", "--out", out, "--asr", asr]
        flags += ["--max_examples", str(args.max_eval_examples)] if args.max_eval_examples else []
        run([sys.executable, "-m", "training.evaluation.cli", *flags], log)
    except Exception as error:  # a failed run is reported and left out; it resumes on the next invocation
        print(f"{name}: FAILED ({error}); see {log}", flush=True)
        return None
    with open(out) as stream:
        summary = json.load(stream)["splits"]["test_noisy"]
    result = {
        "backbone": backbone,
        "guidance": guidance,
        "shift": shift,
        "seed": seed,
        "seconds": time.time() - started,
        "by_snr": {snr: row["model"] for snr, row in summary["by_snr"].items()},
        "mixture_by_snr": {snr: row["mixture"] for snr, row in summary["by_snr"].items()},
        "wer_by_snr": summary.get("wer", {}).get("by_snr"),
    }
    os.makedirs(os.path.dirname(result_path), exist_ok=True)
    write_text_atomically(result_path, json.dumps(result, indent=2))
    print(f"{name}: done in {result['seconds']:.0f} s", flush=True)
    return result


def cell(values: list[float], digits: int = 2) -> str:
    values = [value for value in values if value is not None]
    if not values:
        return "n/a"
    mean, std = mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"


def report(results: list[dict], args) -> str:
    main = [r for r in results if r["shift"] == DEFAULT_SHIFT]
    snrs = sorted({snr for r in results for snr in r["by_snr"]}, key=float)
    lines = [
        "# CMKT on speech in noise",
        "",
        f"Command (in `benchmarks/`): `python bench_noisy.py` ({machine_line()}); {args.max_steps} steps a run on "
        f"`train_noisy` of `{os.path.relpath(args.data, ROOT)}` with dynamic mixing in noise; scored on `test_noisy` "
        "(every noise type at each SNR). Mean ± standard deviation over the seeds that finished (their number in "
        "the `runs` column).",
    ]
    for metric, label, digits in (("si_sdri", "SI-SDRi (dB)", 2), ("pesq", "PESQ", 2), ("stoi", "STOI", 3)):
        lines += ["", f"{label} by input SNR (dB):", "", "| backbone | guidance | runs | " + " | ".join(snrs) + " |"]
        lines.append("|---" * (3 + len(snrs)) + "|")
        for backbone in BACKBONES:
            for guidance in ("none", "cmkt"):
                runs = [r for r in main if (r["backbone"], r["guidance"]) == (backbone, guidance)]
                if runs:
                    values = [cell([r["by_snr"][snr].get(metric) for r in runs], digits) for snr in snrs]
                    lines.append(f"| {backbone} | {guidance} | {len(runs)} | " + " | ".join(values) + " |")
    wer_runs = [r for r in main if r.get("wer_by_snr")]
    if wer_runs:
        lines += ["", "WER of the offline Whisper tiny.en by input SNR (dB):", ""]
        lines += ["| backbone | guidance | " + " | ".join(snrs) + " |", "|---" * (2 + len(snrs)) + "|"]
        first = wer_runs[0]["wer_by_snr"]
        lines.append("| (mixture) | | " + " | ".join(f"{100 * first[s]['mixture']:.1f}%" for s in snrs) + " |")
        lines.append(
            "| (clean reference) | | " + " | ".join(f"{100 * first[s]['reference']:.1f}%" for s in snrs) + " |"
        )
        for r in wer_runs:
            lines.append(
                f"| {r['backbone']} | {r['guidance']} | "
                + " | ".join(f"{100 * r['wer_by_snr'][s]['model']:.1f}%" for s in snrs)
                + " |"
            )
    sweep = sorted(
        (r for r in results if r["backbone"] == "usev-se-tiny" and r["guidance"] == "cmkt"), key=lambda r: r["shift"]
    )
    sweep = [r for r in sweep if r["seed"] == int(args.seeds.split(",")[0])]
    if sweep:
        lines += [
            "",
            "The misalignment shift (`--cmkt_max_shift`, tokens), `usev-se-tiny`, one seed, SI-SDRi (dB):",
            "",
        ]
        lines += ["| shift | " + " | ".join(snrs) + " |", "|---" * (1 + len(snrs)) + "|"]
        for r in sweep:
            lines.append(f"| {r['shift']} | " + " | ".join(f"{r['by_snr'][s]['si_sdri']:.2f}" for s in snrs) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None)
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "default-noisy"))
    parser.add_argument("--workdir", default=os.path.join(ROOT, "outputs", "noisy"))
    parser.add_argument("--max_steps", type=int, default=3000)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--asr_seeds", default="0", help="seeds whose runs are also scored by WER ('' for none)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--max_eval_examples", type=int, default=None)
    parser.add_argument("--report_only", action="store_true")
    args = parser.parse_args(argv)
    args.workdir, args.data = os.path.abspath(args.workdir), os.path.abspath(args.data)
    for folder in ("results", "logs", "evaluations", "runs", "locks"):
        os.makedirs(os.path.join(args.workdir, folder), exist_ok=True)
    if args.report_only:
        results = []
        for item in plan(args):
            path = os.path.join(args.workdir, "results", f"{run_name(*item)}.json")
            if os.path.exists(path):
                with open(path) as stream:
                    results.append(json.load(stream))
    else:
        with ThreadPoolExecutor(max_workers=args.jobs) as lanes:
            results = [r for r in lanes.map(lambda item: train_and_evaluate(args, *item), plan(args)) if r]
    text = report(results, args)
    if args.out:
        replace_section(args.out, text.splitlines()[0], text, level=1)  # its own part of docs/results.md
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
