"""The quality benchmark (`make benchmark-quality`): every guidance strategy trained and evaluated with the same
step budget and 3 seeds, written to docs/results.md.

    python benchmarks/bench_quality.py --out docs/results.md [--max_steps 250] [--seeds 0,1,2] [--workdir DIR]

Runs: `usev-tiny` and `av-mamba-tiny`, each unguided, with output, intermediate and input guidance, with CMKT,
and with the three ELEGANCE heads combined; `usev-se-tiny` (audio-only speech enhancement) unguided and with
CMKT. Each run trains with `elegance-train` (its own process; resumes from its last checkpoint) and is scored
with `elegance-evaluate` on `test` and `test_impaired` (SI-SDRi; the perceptual metrics are skipped for time).
The input-guidance models are scored a second time with the true transcript's LLM embeddings given at inference
(text-informed extraction). A finished run is never redone: results go to ``WORKDIR/results/RUN.json``, so the
benchmark resumes where it was interrupted. It runs on the GPU when one is present (Trainer's default device).

The step budget is chosen so that everything fits in 2 hours on 2 CPU cores: the per-step costs measured by
bench_guidance.py (usev-tiny, 4 x 3 s: 0.30 s unguided to 0.63 s with every head; av-mamba-tiny about 1.6x)
summed over the 14 configurations and 3 seeds come to about 20 s per step of budget, plus about 40 s of start-up
and evaluation per run; 250 steps therefore take about 1 h 50 min. The learning rate (5e-3, cosine decay, 20
warm-up steps) is the best of 2e-3, 5e-3 and 1e-2 for unguided usev-tiny after 200 steps (SI-SDRi on 60 test
mixtures: -0.73, -0.25 and -0.51 dB).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

from bench_report import machine_line, write_text_atomically

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDANCE = ["none", "output", "intermediate", "input", "cmkt", "output,intermediate,input"]
CONFIGS = [(backbone, guidance) for backbone in ("usev-tiny", "av-mamba-tiny") for guidance in GUIDANCE]
CONFIGS += [("usev-se-tiny", "none"), ("usev-se-tiny", "cmkt")]
SPLITS = ["test", "test_impaired"]


def run_name(backbone: str, guidance: str, seed: int) -> str:
    return f"{backbone}-{guidance.replace(',', '+')}-s{seed}"


def run(command: list[str], log_path: str) -> None:
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def prepare(args) -> str:
    """The corpus (generated if missing) and the offline PSLM (pretrained once); returns the PSLM folder."""
    if not os.path.isfile(os.path.join(args.data, "dataset_dict.json")):
        run(
            [sys.executable, "-m", "processing.cli", "generate", "--preset", args.corpus_preset, "--out", args.data],
            os.path.join(args.workdir, "prepare.log"),
        )
    pslm = os.path.join(args.workdir, "pslm", "pslm")
    if not os.path.isfile(os.path.join(pslm, "model.safetensors")):
        run(
            [
                sys.executable,
                "-m",
                "training.pretraining.pslm",
                "--data",
                args.data,
                "--output_dir",
                os.path.dirname(pslm),
                "--max_steps",
                str(args.pslm_steps),
                "--eval_split",
                "none",
                "--disable_tqdm",
                "true",
                "--save_steps",
                "100",
            ],
            os.path.join(args.workdir, "prepare.log"),
        )
    return pslm


def train_and_evaluate(args, backbone: str, guidance: str, seed: int, pslm: str) -> dict:
    name = run_name(backbone, guidance, seed)
    result_path = os.path.join(args.workdir, "results", f"{name}.json")
    if os.path.exists(result_path):
        print(f"{name}: done before, kept", flush=True)
        with open(result_path) as stream:
            return json.load(stream)
    started = time.time()
    run_dir = os.path.join(args.workdir, "runs", name)
    log = os.path.join(args.workdir, "logs", f"{name}.log")
    export = os.path.join(run_dir, "guidance-free")
    if not os.path.isfile(os.path.join(export, "model.safetensors")):
        run(
            [
                sys.executable,
                "-m",
                "training.train",
                "--backbone",
                backbone,
                "--data",
                args.data,
                "--guidance",
                guidance,
                "--pslm",
                pslm,
                "--output_dir",
                run_dir,
                "--max_steps",
                str(args.max_steps),
                "--seed",
                str(seed),
                "--learning_rate",
                str(args.learning_rate),
                "--lr_scheduler_type",
                "cosine",
                "--warmup_steps",
                "20",
                "--per_device_train_batch_size",
                "4",
                "--save_steps",
                "100",
                "--logging_steps",
                "25",
                "--eval_split",
                "none",
                "--disable_tqdm",
                "true",
                "--resume_from_checkpoint",
                "last",
                "--embedding_cache_dir",
                os.path.join(args.workdir, "cache"),
            ],
            log,
        )
    evaluations = {}
    variants = [("", [])]
    if guidance == "input":
        variants.append(("text_informed", ["--text_informed_llm", "default"]))
    for variant, flags in variants:
        out = os.path.join(args.workdir, "evaluations", f"{name}{'-' + variant if variant else ''}.json")
        splits = ["test"] if backbone.startswith("usev-se") or variant else SPLITS
        run(
            [
                sys.executable,
                "-m",
                "training.evaluation.cli",
                "--model",
                export,
                "--data",
                args.data,
                "--splits",
                ",".join(splits),
                "--out",
                out,
                "--no_perceptual",
                "--asr",
                "none",
                "--embedding_cache_dir",
                os.path.join(args.workdir, "cache"),
            ]
            + (["--max_examples", str(args.max_eval_examples)] if args.max_eval_examples else [])
            + flags,
            log,
        )
        with open(out) as stream:
            evaluations[variant or "plain"] = json.load(stream)["splits"]
    result = {
        "backbone": backbone,
        "guidance": guidance,
        "seed": seed,
        "seconds": time.time() - started,
        "si_sdri": {split: summary["systems"]["model"]["si_sdri"] for split, summary in evaluations["plain"].items()},
    }
    if "text_informed" in evaluations:
        result["text_informed_si_sdri"] = evaluations["text_informed"]["test"]["systems"]["model"]["si_sdri"]
    os.makedirs(os.path.dirname(result_path), exist_ok=True)
    write_text_atomically(result_path, json.dumps(result, indent=2))
    print(f"{name}: {result['si_sdri']} in {result['seconds']:.0f} s", flush=True)
    return result


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


MIN_BASELINE_FOR_RELATIVE_DB = 1.0  # below this a relative change divides by almost nothing and means nothing


def comparison_cells(values: list[float], baseline: list[float] | None) -> str:
    """``mean ± std | difference in dB (relative change) | beyond spread`` against the unguided runs."""
    mean, std = mean_std(values)
    cells = f"{mean:.2f} ± {std:.2f}"
    if baseline is None:
        return cells + " | | "
    base_mean, base_std = mean_std(baseline)
    relative = (
        f" ({100 * (mean - base_mean) / abs(base_mean):+.1f}%)"
        if abs(base_mean) >= MIN_BASELINE_FOR_RELATIVE_DB
        else ""
    )
    beyond = "yes" if abs(mean - base_mean) > std + base_std else "no"
    return f"{cells} | {mean - base_mean:+.2f} dB{relative} | {beyond}"


def report(results: list[dict], args, seconds: float) -> str:
    by_config: dict[tuple, list[dict]] = {}
    for result in results:
        by_config.setdefault((result["backbone"], result["guidance"]), []).append(result)
    lines = [
        "# Results: guidance strategies on the embedded corpus",
        "",
        f"Command (in `benchmarks/`): `python bench_quality.py {shlex.join(sys.argv[1:])}` ({machine_line()}); "
        f"wall time of this invocation {seconds / 60:.0f} min; the {len(results)} runs took "
        f"{sum(r['seconds'] for r in results) / 60:.0f} min of their own (training, export and scoring).",
        f"Each run: {args.max_steps} steps of batch 4 (mixtures of `{os.path.relpath(args.data, ROOT)}`), learning rate {args.learning_rate:g} with "
        "cosine decay, visual impairment on the fly; SI-SDRi in dB on `test` and on `test_impaired` (all impairment "
        "types and ratios), mean ± standard deviation over the seeds. 'vs. unguided': the difference of means against "
        "the unguided runs of the same backbone, in dB, and as a relative change where the unguided mean is at least "
        f"{MIN_BASELINE_FOR_RELATIVE_DB:g} dB from 0 (closer to 0 it divides by almost nothing); 'beyond spread' says "
        "whether the difference of means exceeds the sum of the two standard deviations.",
        "",
        "| backbone | guidance | test SI-SDRi | vs. unguided | beyond spread | test_impaired SI-SDRi | vs. unguided | beyond spread |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (backbone, guidance), runs in by_config.items():
        if backbone.startswith("usev-se"):
            continue
        baseline = by_config.get((backbone, "none"))
        cells = []
        for split in SPLITS:
            values = [r["si_sdri"][split] for r in runs]
            base = None if guidance == "none" or baseline is None else [r["si_sdri"][split] for r in baseline]
            cells.append(comparison_cells(values, base))
        lines.append(f"| {backbone} | {guidance} | " + " | ".join(cells) + " |")
    informed = [(key, runs) for key, runs in by_config.items() if any("text_informed_si_sdri" in r for r in runs)]
    if informed:
        lines += [
            "",
            "Input guidance with the true transcript given at inference (text-informed extraction), `test`:",
            "",
            "| backbone | transcript at inference | no transcript |",
            "|---|---|---|",
        ]
        for (backbone, _), runs in informed:
            with_text = mean_std([r["text_informed_si_sdri"] for r in runs])
            without = mean_std([r["si_sdri"]["test"] for r in runs])
            lines.append(
                f"| {backbone} | {with_text[0]:.2f} ± {with_text[1]:.2f} | {without[0]:.2f} ± {without[1]:.2f} |"
            )
    se = [(key, runs) for key, runs in by_config.items() if key[0].startswith("usev-se")]
    if se:
        lines += [
            "",
            "Audio-only speech enhancement (CMKT's setting), `test` SI-SDRi:",
            "",
            "| backbone | guidance | test SI-SDRi | vs. unguided | beyond spread |",
            "|---|---|---|---|---|",
        ]
        baseline = by_config.get(("usev-se-tiny", "none"))
        for (backbone, guidance), runs in se:
            base = None if guidance == "none" or baseline is None else [r["si_sdri"]["test"] for r in baseline]
            lines.append(
                f"| {backbone} | {guidance} | " + comparison_cells([r["si_sdri"]["test"] for r in runs], base) + " |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="Markdown file to write (e.g. docs/results.md)")
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "default"))
    parser.add_argument("--corpus_preset", default="default")
    parser.add_argument("--workdir", default=os.path.join(ROOT, "outputs", "quality"))
    parser.add_argument("--max_steps", type=int, default=250)
    parser.add_argument("--learning_rate", type=float, default=5e-3)
    parser.add_argument("--pslm_steps", type=int, default=200)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--configs", default=None, help="only these BACKBONE:GUIDANCE pairs (';'-separated)")
    parser.add_argument("--max_eval_examples", type=int, default=None)
    args = parser.parse_args(argv)
    args.workdir, args.data = os.path.abspath(args.workdir), os.path.abspath(args.data)  # the runs start in ROOT
    for folder in ("results", "logs", "evaluations", "runs"):
        os.makedirs(os.path.join(args.workdir, folder), exist_ok=True)
    configs = CONFIGS if args.configs is None else [tuple(item.split(":")) for item in args.configs.split(";")]
    started = time.time()
    pslm = prepare(args)
    # seed-major order: an interrupted benchmark has every configuration at its first seeds
    results = [
        train_and_evaluate(args, backbone, guidance, int(seed), pslm)
        for seed in args.seeds.split(",")
        for backbone, guidance in configs
    ]
    text = report(results, args, time.time() - started)
    if args.out:
        write_text_atomically(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
