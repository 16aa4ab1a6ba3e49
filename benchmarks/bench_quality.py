"""The quality benchmark (`make benchmark-quality`): ELEGANCE's guidance strategies compared on models that extract,
written to docs/results.md.

    python benchmarks/bench_quality.py --out docs/results.md [--max_steps 3000] [--seeds 0,1,2] [--jobs 2]

Every run trains `usev-tiny` by the shipped recipe (`pretrained/README.md`): 256 encoder filters, the shipped lip
reader as a frozen lip encoder (its embeddings cached), dynamic mixing, impairment on 30% of the clips, and
`elegance-train`'s default optimiser settings (learning rate 2e-3, 200 warm-up steps, cosine decay). The separator
starts from scratch, as the paper trains it. The configurations are unguided, output, intermediate and input
guidance. Each run is scored with `elegance-evaluate` on `test` and
`test_impaired` (SI-SDRi; the perceptual metrics are skipped for time); the input-guidance models a second time
with the true transcript's LLM embeddings given at inference (text-informed extraction).

A finished run is never redone: its result goes to ``WORKDIR/results/RUN.json``, an interrupted run resumes from its
last checkpoint, and the runs go seed by seed, so an interrupted benchmark has every configuration at its first
seeds. ``--report_only`` writes the table from the results there are. ``--jobs N`` trains N runs at a time, each on
one thread (`OMP_NUM_THREADS=1`); on a GPU machine use ``--jobs 1``.

The step budget: 3,000 steps, the length at which the unguided recipe is past 5 dB SI-SDRi on `test` (the shipped
model's run was at 4.8 dB validation SI-SDRi after 2,000 steps of a 16,000-step schedule; a 3,000-step cosine
schedule ends its decay there). The 2-hour bound on 2 cores did not fit every configuration at that budget, so
three were dropped: the three heads together, `av-mamba-tiny`, and CMKT (which belongs to speech in noise);
`--configs` brings them back. Output guidance needs a frozen speech encoder (the PSLM): ``--pslm`` names its folder
(a Whisper folder such as the offline Whisper of `elegance-whisper-offline`, or an `elegance-pretrain-pslm` folder);
without it the package's small CTC PSLM is pretrained first.
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
from concurrent.futures import ThreadPoolExecutor

from bench_report import machine_line, replace_section, write_text_atomically

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDANCE = ["none", "intermediate", "input", "output"]
CONFIGS = [("usev-tiny", guidance) for guidance in GUIDANCE]
SPLITS = ["test", "test_impaired"]
# the shipped models' architecture changes (pretrained/README.md), so that the benchmark measures those models
CONFIG_OVERRIDES = {"usev-tiny": "encoder_channels=256"}
LIP_READER = os.path.join(ROOT, "pretrained", "lip-reader")


def run_name(backbone: str, guidance: str, seed: int) -> str:
    return f"{backbone}-{guidance.replace(',', '+')}-s{seed}"


def run(command: list[str], log_path: str) -> None:
    """``command`` in ROOT on one thread (the runs share the machine), its output appended to ``log_path``."""
    with open(log_path, "a") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        environment = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=environment)


def prepare(args) -> str:
    """The corpus (generated if missing) and the PSLM (``--pslm``, else pretrained once); returns its folder."""
    if not os.path.isfile(os.path.join(args.data, "dataset_dict.json")):
        run(
            [sys.executable, "-m", "processing.cli", "generate", "--preset", args.corpus_preset, "--out", args.data],
            os.path.join(args.workdir, "prepare.log"),
        )
    if args.pslm:
        return args.pslm
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


def finished_result(args, backbone: str, guidance: str, seed: int) -> dict | None:
    """The stored result of a run finished before, or None."""
    result_path = os.path.join(args.workdir, "results", f"{run_name(backbone, guidance, seed)}.json")
    if not os.path.exists(result_path):
        return None
    with open(result_path) as stream:
        return json.load(stream)


def train_and_evaluate(args, backbone: str, guidance: str, seed: int, pslm: str) -> dict:
    name = run_name(backbone, guidance, seed)
    result_path = os.path.join(args.workdir, "results", f"{name}.json")
    finished = finished_result(args, backbone, guidance, seed)
    if finished is not None:
        print(f"{name}: done before, kept", flush=True)
        return finished
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
            ]
            + ([] if "-se-" in backbone else ["--lip_encoder", args.lip_encoder])  # audio-only models have no lips
            + (["--config_overrides", CONFIG_OVERRIDES[backbone]] if backbone in CONFIG_OVERRIDES else [])
            + (["--learning_rate", str(args.learning_rate)] if args.learning_rate else []),
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


def train_or_report_failure(args, backbone: str, guidance: str, seed: int, pslm: str) -> dict | None:
    """One run; a run that fails is reported and left out (it resumes on the next invocation), not fatal."""
    try:
        return train_and_evaluate(args, backbone, guidance, seed, pslm)
    except subprocess.CalledProcessError as error:
        name = run_name(backbone, guidance, seed)
        print(f"{name}: FAILED ({error}); see {os.path.join(args.workdir, 'logs', name + '.log')}", flush=True)
        return None


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


MIN_BASELINE_FOR_RELATIVE_DB = 1.0  # below this a relative change divides by almost nothing and means nothing


def comparison_cells(values: list[float], baseline: list[float] | None) -> str:
    """``mean ± std | difference in dB (relative change) | beyond spread`` against the unguided runs."""
    mean, std = mean_std(values)
    cells = f"{mean:.2f} ± {std:.2f}" if len(values) > 1 else f"{mean:.2f}"
    if baseline is None:
        return cells + " | | "
    base_mean, base_std = mean_std(baseline)
    relative = (
        f" ({100 * (mean - base_mean) / abs(base_mean):+.1f}%)"
        if abs(base_mean) >= MIN_BASELINE_FOR_RELATIVE_DB
        else ""
    )
    if len(values) < 2 or len(baseline) < 2:
        beyond = "n/a (one seed)"  # a single run has no spread to compare against
    else:
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
        + ("" if args.report_only else f"wall time of this invocation {seconds / 60:.0f} min; ")
        + f"the {len(results)} finished runs took {sum(r['seconds'] for r in results) / 60:.0f} min of their own "
        "(training, export and scoring, each on one thread beside another run).",
        f"Each run: {args.max_steps} steps of batch 4 (dynamic mixtures of `{os.path.relpath(args.data, ROOT)}`'s "
        f"training speakers) from the lip encoder `{os.path.relpath(args.lip_encoder, ROOT)}` (frozen), the separator "
        "from scratch, `elegance-train`'s default optimiser settings"
        + (f" but learning rate {args.learning_rate:g}" if args.learning_rate else "")
        + ", impairment on 30% of the training clips; "
        + ", ".join(f"{name} with `--config_overrides {value}`" for name, value in CONFIG_OVERRIDES.items())
        + ". SI-SDRi in dB on `test` and on `test_impaired` (all impairment "
        "types and ratios), mean ± standard deviation over the seeds. 'vs. unguided': the difference of means against "
        "the unguided runs of the same backbone, in dB, and as a relative change where the unguided mean is at least "
        f"{MIN_BASELINE_FOR_RELATIVE_DB:g} dB from 0 (closer to 0 it divides by almost nothing); 'beyond spread' says "
        "whether the difference of means exceeds the sum of the two standard deviations.",
        "",
        "| backbone | guidance | seeds | test SI-SDRi | vs. unguided | beyond spread | test_impaired SI-SDRi | vs. unguided | beyond spread |",
        "|---|---|---|---|---|---|---|---|---|",
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
        seeds = ",".join(str(r["seed"]) for r in runs)
        lines.append(f"| {backbone} | {guidance} | {seeds} | " + " | ".join(cells) + " |")
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
    parser.add_argument("--max_steps", type=int, default=3000)
    parser.add_argument("--learning_rate", type=float, default=None, help="default: elegance-train's")
    parser.add_argument("--lip_encoder", default=LIP_READER)
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at a time, one thread each")
    parser.add_argument("--report_only", action="store_true", help="write the table from the finished runs")
    parser.add_argument("--pslm", default=None, help="the PSLM folder for output guidance (default: pretrain one)")
    parser.add_argument("--pslm_steps", type=int, default=200)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--configs", default=None, help="only these BACKBONE:GUIDANCE pairs (';'-separated)")
    parser.add_argument("--max_eval_examples", type=int, default=None)
    args = parser.parse_args(argv)
    args.workdir, args.data = os.path.abspath(args.workdir), os.path.abspath(args.data)  # the runs start in ROOT
    for folder in ("results", "logs", "evaluations", "runs"):
        os.makedirs(os.path.join(args.workdir, folder), exist_ok=True)
    configs = CONFIGS if args.configs is None else [tuple(item.split(":")) for item in args.configs.split(";")]
    args.lip_encoder = os.path.abspath(args.lip_encoder)
    started = time.time()
    # seed-major order: an interrupted benchmark has every configuration at its first seeds
    plan = [(backbone, guidance, int(seed)) for seed in args.seeds.split(",") for backbone, guidance in configs]
    if args.report_only:
        results = [result for result in map(lambda item: finished_result(args, *item), plan) if result is not None]
    else:
        pslm = prepare(args)
        with ThreadPoolExecutor(max_workers=args.jobs) as lanes:
            results = [r for r in lanes.map(lambda item: train_or_report_failure(args, *item, pslm), plan) if r]
    text = report(results, args, time.time() - started)
    if args.out:  # its own part of the file; the recognition benchmark owns another
        replace_section(args.out, text.splitlines()[0], text, level=1)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
