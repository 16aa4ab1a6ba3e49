"""The recognition benchmark (`make benchmark-recognition`): AVUR-LLM's ablation on speech in noise, the fine-tuned
audio-only baseline against SMA, + AMF and + VUR, written to its part of docs/results.md.

    python benchmarks/bench_recognition.py --out docs/results.md [--max_steps 300] [--seeds 0,1,2]
        [--jobs 2] [--vur_seeds 0] [--chain_seed 0] [--report_only]

Every stage-1 run trains `elegance-train-avsr` on `train_noisy` of the noisy corpus (`make data-noisy`) for the same
steps, batch and schedule, around the frozen offline Whisper tiny.en with rank-8 LoRA on its decoder:
- ``audio``: the LoRA alone, on the audio (``--audio_only``): Whisper fine-tuned with the same budget;
- ``sma``: the LoRA, plus the lips through the alignment blocks and a plain gated cross-attention in the decoder
  (``--fusion_modulation none``);
- ``amf``: the same with AMF, the injection scaled by the token's acoustic unreliability (the default): the
  paper's layout;
- ``lips``: the lip-reading recipe, the fusion that measurably reads the lips (docs/results.md): no alignment
  block (``--sma_layers none``), the lips read where Whisper listens (``--fusion_read aligned``), AMF's acoustic
  probe kept as Whisper's (``--freeze_acoustic_probe``), the open-gate loss and a faster visual path;
- ``lips-frozen-whisper``: the same with Whisper wholly frozen (no LoRA), so that only the lips can lower the loss;
- ``lips-on-audio``: the lip-reading recipe trained on top of the ``audio`` run of the same seed (``--whisper`` its
  folder: Whisper with the baseline's LoRA merged, frozen), for ``--max_steps`` more steps: the LoRA adapts to the
  corpus first, then only the lips can lower the loss further. Trained with LoRA alongside, the visual path learns
  the same content-independent adaptation as the LoRA and the lips stop mattering (docs/results.md);
- ``audio-long``: the ``audio`` baseline for twice ``--max_steps``, the budget of ``lips-on-audio``'s two stages.
``--kinds`` chooses which of them train (by default ``DEFAULT_KINDS``: the baselines of both budgets, the paper's
layout and the two-stage lip-reading recipe, about 2 hours of two one-thread lanes for 3 seeds; the others are
diagnostics); the tables show every kind that has results.
Each is scored on `test_noisy` (3 noise types x 5 SNRs, 150 clips) by `elegance-evaluate`, greedy. On the runs of
``--recogniser_kind`` (``lips-on-audio`` by default: the recogniser whose lips matter) of ``--vur_seeds``, stage 2
(`elegance-train-vur`, its default LM as the rescorer) is trained on the N-best lists of `train_noisy` and scored
with ``--vur`` (N-best rescored, beside the beam's own first choice). The same kind's run of ``--chain_seed`` is
also scored on the talker mixtures of `test` with ``--extractor pretrained/usev-tiny``: the target's words from a
two-talker mixture, by extraction then recognition, against recognition of the mixture.

A finished step is never redone (its JSON exists), an interrupted run resumes from its checkpoint; ``--report_only``
writes the tables from what there is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from bench_quality import ROOT, mean_std, run
from bench_report import machine_line, replace_section

LIP_READING_RECIPE = [
    *("--sma_layers", "none", "--fusion_read", "aligned", "--freeze_acoustic_probe", "true"),
    *("--fusion_auxiliary_weight", "1", "--visual_lr_scale", "10"),
]
KINDS = {  # each kind's flags, after the common ones (a repeated flag takes the kind's value)
    "audio": ["--audio_only"],
    "sma": ["--fusion_modulation", "none"],
    "amf": [],
    "lips": LIP_READING_RECIPE,
    "lips-frozen-whisper": [*LIP_READING_RECIPE, "--whisper_lora_rank", "0"],
    "lips-on-audio": [*LIP_READING_RECIPE, "--whisper_lora_rank", "0"],  # + --whisper: the seed's audio run
    "audio-long": ["--audio_only"],  # + --max_steps: twice the others'
}
BUILT_ON = {"lips-on-audio": "audio"}  # kinds that start from another kind's run of the same seed
STEPS_MULTIPLE = {"audio-long": 2}  # kinds that train for a multiple of --max_steps
LABELS = {
    "audio": "audio-only Whisper, fine-tuned (LoRA)",
    "sma": "SMA (+ lips, plain gate)",
    "amf": "SMA + AMF",
    "lips": "AMF, lip-reading recipe (no SMA, aligned read, frozen probe)",
    "lips-frozen-whisper": "AMF, lip-reading recipe, Whisper frozen (no LoRA)",
    "lips-on-audio": "fine-tuned audio-only Whisper, then the lip-reading recipe on top (two stages)",
    "audio-long": "audio-only Whisper, fine-tuned (LoRA), twice the steps",
}
AV_KINDS = [kind for kind in KINDS if not kind.startswith("audio")]
DEFAULT_KINDS = ["audio", "audio-long", "amf", "lips-on-audio"]
LORA_RANK = "8"
CHAIN_SPLITS = ("test", "test_impaired")  # of the talker corpus: clean lips, then impaired ones


def parse_kinds(text: str) -> list[str]:
    """``--kinds``: comma-separated names of KINDS, in KINDS' order, with the kinds they are built on."""
    kinds = [kind.strip() for kind in text.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise SystemExit(f"--kinds takes comma-separated names among {', '.join(KINDS)}; got {text!r}")
    kinds += [BUILT_ON[kind] for kind in kinds if kind in BUILT_ON]
    return [kind for kind in KINDS if kind in kinds]


def run_name(kind: str, seed: int) -> str:
    return f"{kind}-s{seed}"


def paths(args, name: str) -> tuple[str, str, str]:
    """(run folder, its test_noisy evaluation JSON, its log)."""
    return (
        os.path.join(args.workdir, name),
        os.path.join(args.workdir, f"{name}-test_noisy.json"),
        os.path.join(args.workdir, f"{name}.log"),
    )


def run_missing(name: str, log: str, steps: list[tuple[str, str, list[str]]]) -> bool:
    """Runs each ``(output, module, flags)`` whose ``output`` is not there yet (``python -m module *flags``); a
    failure is reported and left out (it resumes on the next invocation): False."""
    try:
        for output, module, flags in steps:
            if not os.path.exists(output):
                run([sys.executable, "-m", module, *flags], log)
    except Exception as error:
        print(f"{name}: FAILED ({error}); see {log}", flush=True)
        return False
    return True


def stage_one(args, kind: str, seed: int) -> bool:
    """Train and score one stage-1 run."""
    name = run_name(kind, seed)
    folder, evaluation, log = paths(args, name)
    train = ["--data", args.data, "--train_splits", "train_noisy", "--eval_split", "none"]
    train += ["--output_dir", folder, "--max_steps", str(args.max_steps), "--save_steps", "50"]
    train += ["--save_total_limit", "1", "--logging_steps", "25", "--disable_tqdm", "true"]
    train += ["--resume_from_checkpoint", "last", "--seed", str(seed), "--whisper_lora_rank", LORA_RANK]
    score = ["--model", os.path.join(folder, "avsr"), "--data", args.data, "--splits", "test_noisy"]
    score += ["--audio_state_cache", args.state_cache, "--lips_control", "--out", evaluation]
    steps = [
        (
            os.path.join(folder, "avsr", "model.safetensors"),
            "training.train_avsr",
            train + kind_flags(args, kind, seed),
        ),
        (evaluation, "training.evaluation.cli", score),
    ]
    return run_missing(name, log, steps)


def kind_flags(args, kind: str, seed: int) -> list[str]:
    """What ``kind`` adds to the common flags (a repeated flag takes the kind's value)."""
    flags = list(KINDS[kind])
    if kind in BUILT_ON:
        flags += ["--whisper", os.path.join(paths(args, run_name(BUILT_ON[kind], seed))[0], "avsr")]
    if kind in STEPS_MULTIPLE:
        flags += ["--max_steps", str(STEPS_MULTIPLE[kind] * args.max_steps)]
    return flags


def stage_two(args, seed: int) -> bool:
    """VUR on the ``--recogniser_kind`` run of ``seed``: train the rescorer, score the N-best rescored."""
    name = f"vur-{args.recogniser_kind}-s{seed}"
    folder, evaluation, log = paths(args, name)
    recognizer = os.path.join(paths(args, run_name(args.recogniser_kind, seed))[0], "avsr")
    train = ["--recognizer", recognizer, "--data", args.data, "--output_dir", folder, "--seed", str(seed)]
    train += ["--max_examples", str(args.vur_examples), "--disable_tqdm", "true"]
    train += ["--max_steps", str(args.vur_steps), "--resume_from_checkpoint", "last"]
    score = ["--model", recognizer, "--vur", os.path.join(folder, "vur"), "--data", args.data]
    score += ["--audio_state_cache", args.state_cache, "--splits", "test_noisy", "--out", evaluation]
    steps = [
        (os.path.join(folder, "vur", "vur_config.json"), "training.train_vur", train),
        (evaluation, "training.evaluation.cli", score),
    ]
    return run_missing(name, log, steps)


def chain(args, seed: int) -> bool:
    """The ``--recogniser_kind`` recogniser of ``seed`` on two-talker mixtures, with and without extraction first, on
    each of ``CHAIN_SPLITS`` (`test_impaired`: the same task with the target's lips impaired)."""
    name = f"chain-{args.recogniser_kind}-s{seed}"
    _, _, log = paths(args, name)
    recognizer = os.path.join(paths(args, run_name(args.recogniser_kind, seed))[0], "avsr")
    steps = []
    for split in CHAIN_SPLITS:
        score = ["--model", recognizer, "--extractor", args.extractor, "--data", args.talker_data, "--splits", split]
        score += ["--max_examples", str(args.chain_examples), "--out", chain_path(args, seed, split)]
        steps.append(
            (
                chain_path(args, seed, split),
                "training.evaluation.cli",
                score + ["--audio_state_cache", args.state_cache],
            )
        )
    return run_missing(name, log, steps)


def chain_path(args, seed: int, split: str) -> str:
    return os.path.join(args.workdir, f"chain-{args.recogniser_kind}-s{seed}-{split}.json")


def load(path: str | None, split: str = "test_noisy") -> dict | None:
    if not path or not os.path.isfile(path):
        return None
    with open(path) as stream:
        return json.load(stream)["splits"][split]


def cell(values: list[float]) -> str:
    if not values:
        return "n/a"
    mean, std = mean_std([100 * value for value in values])
    return f"{mean:.1f} ± {std:.1f}" if len(values) > 1 else f"{mean:.1f}"


def report(args) -> str:
    seeds = [int(seed) for seed in args.seeds.split(",")]
    runs = {kind: [load(paths(args, run_name(kind, seed))[1]) for seed in seeds] for kind in KINDS}
    runs = {kind: [summary for summary in summaries if summary] for kind, summaries in runs.items()}
    vur = [
        s
        for s in (
            load(paths(args, f"vur-{args.recogniser_kind}-s{seed}")[1]) for seed in args.vur_seeds.split(",") if seed
        )
        if s
    ]
    zero_shot = load(args.zero_shot)
    rows = []  # (label, runs, summaries, system)
    if zero_shot:
        rows.append(("audio-only Whisper, zero-shot", [zero_shot], "audio_only"))
    rows += [(LABELS[kind], runs[kind], "audio_only") for kind in ("audio", "audio-long")]
    for kind in AV_KINDS:
        rows += [
            (LABELS[kind], runs[kind], "av"),
            (
                f"{LABELS[kind]}, another clip's lips",
                [s for s in runs[kind] if "av_other_lips" in s["wer"]],
                "av_other_lips",
            ),
            (f"{LABELS[kind]}, its lips withheld", runs[kind], "audio_only"),
        ]
    if vur:
        rows += [
            (f"{LABELS[args.recogniser_kind]}, beam 5 (stage 1 alone)", vur, "av_beam"),
            (f"{LABELS[args.recogniser_kind]} + VUR (N-best rescored)", vur, "av_vur"),
        ]
    snrs = sorted({snr for _, summaries, _ in rows for s in summaries for snr in s.get("by_snr", {})}, key=float)
    lines = [
        "# Recognition in noise: the AVUR-LLM ablation",
        "",
        f"Command (in `benchmarks/`): `python bench_recognition.py --max_steps {args.max_steps} --seeds {args.seeds}"
        + (f" --recogniser_kind {args.recogniser_kind}" if args.recogniser_kind != "lips-on-audio" else "")
        + "` "
        f"({machine_line()}); `elegance-train-avsr` on `train_noisy` of `{os.path.relpath(args.data, ROOT)}` "
        f"({args.max_steps} steps of 8 clips, learning rate 5e-4 with 50 warm-up steps and cosine decay, rank-8 LoRA "
        "on Whisper tiny.en's decoder in every run but the one that says Whisper is frozen), scored greedy on "
        "`test_noisy` (150 clips: 3 noise types x 5 SNRs, 30 clips per SNR). WER in %, mean ± standard deviation over "
        "the seeds that finished (their number in the `runs` column).",
        "",
        "| system | runs | all | " + " | ".join(f"{snr} dB" for snr in snrs) + " |",
        "|---" * (3 + len(snrs)) + "|",
    ]
    for label, summaries, system in rows:
        if summaries:
            overall = cell([s["wer"][system] for s in summaries])
            by_snr = [cell([s["by_snr"][snr][system] for s in summaries if snr in s["by_snr"]]) for snr in snrs]
            lines.append(f"| {label} | {len(summaries)} | {overall} | " + " | ".join(by_snr) + " |")
    clean = [s["wer"]["clean"] for kind in AV_KINDS for s in runs[kind]]
    if clean:
        lines += ["", f"The AV models on the clean targets (with lips), the floor: {cell(clean)}% WER."]
    baseline = [s["by_snr"]["0"]["audio_only"] for s in runs["audio"] if "0" in s["by_snr"]]
    if baseline:
        base = mean_std(baseline)[0]
        lines += [
            "",
            "The paper's headline, the relative WER reduction at 0 dB SNR over the fine-tuned audio-only "
            f"baseline ({100 * base:.1f}% WER; the paper: 37%):",
            "",
        ]
        for label, summaries, system in rows[1:]:
            values = [s["by_snr"]["0"][system] for s in summaries if "0" in s["by_snr"]]
            if values and system != "audio_only":
                lines.append(f"- {label}: {100 * (1 - mean_std(values)[0] / base):+.1f}%")
        longer = [s["by_snr"]["0"]["audio_only"] for s in runs["audio-long"] if "0" in s["by_snr"]]
        two_stage = [s["by_snr"]["0"]["av"] for s in runs["lips-on-audio"] if "0" in s["by_snr"]]
        if longer and two_stage:
            same_budget = mean_std(longer)[0]
            lines.append(
                f"- {LABELS['lips-on-audio']}, against the baseline of the same budget ({LABELS['audio-long']}, "
                f"{100 * same_budget:.1f}% WER): {100 * (1 - mean_std(two_stage)[0] / same_budget):+.1f}%"
            )
    chained = {split: load(chain_path(args, args.chain_seed, split), split) for split in CHAIN_SPLITS}
    chained = {split: summary for split, summary in chained.items() if summary}
    if chained:
        extractor = os.path.relpath(args.extractor, ROOT)
        inputs = [
            ("the raw mixture, with the target's lips", "av"),
            ("the raw mixture, audio only", "audio_only"),
            (f"extracted by `{extractor}` (with the lips), recognised with the lips", "extracted"),
            ("the clean target, with the lips", "clean"),
        ]
        lines += [
            "",
            f"The target's words from two-talker mixtures (`{os.path.relpath(args.talker_data, ROOT)}`, the first "
            f"mixtures of each split, their number in brackets; the recogniser "
            f"{LABELS[args.recogniser_kind]} of seed {args.chain_seed}, "
            "greedy). On `test_impaired` a run of 0 to 100% of the target's lip frames is blanked, occluded or "
            "low-resolution, for the extractor and the recogniser alike:",
            "",
            "| input to the recogniser | "
            + " | ".join(f"WER, `{split}` ({s['examples']})" for split, s in chained.items())
            + " |",
            "|---" * (1 + len(chained)) + "|",
        ]
        for label, system in inputs:
            lines.append(
                f"| {label} | " + " | ".join(f"{100 * s['wer'][system]:.1f}%" for s in chained.values()) + " |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "results.md"))
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "default-noisy"))
    parser.add_argument("--talker_data", default=os.path.join(ROOT, "data", "default"))
    parser.add_argument("--workdir", default=os.path.join(ROOT, "outputs", "avsr", "ablation"))
    parser.add_argument("--zero_shot", default=os.path.join(ROOT, "outputs", "avsr", "zero-shot-test_noisy.json"))
    parser.add_argument("--extractor", default=os.path.join(ROOT, "pretrained", "usev-tiny"))
    parser.add_argument(
        "--state_cache",
        default=os.path.join(ROOT, "outputs", "avsr", "states"),
        help="where the evaluations keep the frozen Whisper's encoder states (float32, shared by every run)",
    )
    parser.add_argument(
        "--kinds", default=",".join(DEFAULT_KINDS), help=f"the stage-1 runs to train, among {', '.join(KINDS)}"
    )
    parser.add_argument(
        "--recogniser_kind",
        default="lips-on-audio",
        choices=AV_KINDS,
        help="the AV kind whose runs VUR rescores and the two-talker chain recognises with",
    )
    parser.add_argument("--max_steps", type=int, default=300)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--vur_seeds", default="0")
    parser.add_argument("--vur_examples", type=int, default=600, help="train_noisy clips whose N-best lists train VUR")
    parser.add_argument("--vur_steps", type=int, default=300)
    parser.add_argument("--chain_seed", type=int, default=0)
    parser.add_argument("--chain_examples", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--report_only", action="store_true")
    args = parser.parse_args(argv)
    started = time.time()
    if not args.report_only:
        seeds = [int(seed) for seed in args.seeds.split(",")]
        kinds = parse_kinds(args.kinds)
        with ThreadPoolExecutor(args.jobs) as pool:  # seed by seed, so an interrupted benchmark has whole seeds
            first = [(kind, seed) for seed in seeds for kind in kinds if kind not in BUILT_ON]
            list(pool.map(lambda job: stage_one(args, *job), first))
            then = [(kind, seed) for seed in seeds for kind in kinds if kind in BUILT_ON]  # on a run of `first`
            list(pool.map(lambda job: stage_one(args, *job), then))
            if args.recogniser_kind in kinds:  # stage 2 and the chain build on its stage-1 runs
                later = [pool.submit(stage_two, args, int(seed)) for seed in args.vur_seeds.split(",") if seed]
                later.append(pool.submit(chain, args, args.chain_seed))
                [future.result() for future in later]
    text = report(args)
    replace_section(args.out, text.splitlines()[0], text, level=1)  # its own part of docs/results.md
    print(f"{args.out} written ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
