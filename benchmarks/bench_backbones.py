"""Backbone speed and memory on this CPU: the selective scan, inference real-time factor, training steps, a
profile, and peak memory on a 60 s input.

    python benchmarks/bench_backbones.py --out docs/benchmarks.md

Everything runs in float32 with the process's default threads. The selective scan is compared with transformers'
pure-PyTorch fallback in the same process; `usev-base` is compared with a plain re-implementation of the original
USEV network (`reference_usev.py`) at identical sizes, also in the same process. Peak memory is measured in a fresh
subprocess per preset: the peak resident set size during one 60 s inference (sampled every 2 ms) above the
level just before it, inputs already allocated.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time

import torch
from bench_report import machine_line, peak_growth_mb, replace_section
from reference_usev import ReferenceUSEV

from modeling_elegance import MODEL_CLASSES, preset_config
from modeling_elegance.random_inputs import random_inputs
from modeling_elegance.selective_scan import selective_scan
from modeling_elegance.sequence_models import MambaMixer

SECTION = "## Backbones"
TSE_PRESETS = ["usev-tiny", "av-mamba-tiny", "usev-base", "av-mamba-base"]
SE_PRESETS = ["usev-se-tiny", "av-mamba-se-tiny", "usev-se-base", "av-mamba-se-base"]


def timed(function, repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def build(name: str, **overrides):
    torch.manual_seed(0)
    config = preset_config(name, **overrides)
    return MODEL_CLASSES[type(config)](config)


def model_inputs(model, batch: int, seconds: float) -> dict:
    return random_inputs(model.config, batch=batch, seconds=seconds)


def cosine_training_step(model, forward, inputs: dict, target: torch.Tensor) -> None:
    """One backward pass of a cosine loss against ``target``, the same for the original network and ours."""
    model.zero_grad(set_to_none=True)
    estimate = forward(model, inputs)[:, : target.shape[1]]
    (-torch.nn.functional.cosine_similarity(estimate, target, dim=-1).mean()).backward()


def real_time_factor(model, seconds: float = 4.0, repeats: int = 3) -> float:
    model.eval()
    inputs = model_inputs(model, 1, seconds)
    with torch.inference_mode():
        return timed(lambda: model(**inputs), repeats) / seconds


def training_step(model, batch: int = 4, seconds: float = 3.0, repeats: int = 2) -> float:
    model.train()
    inputs = model_inputs(model, batch, seconds)
    labels = torch.randn_like(inputs["input_values"])

    def step():
        model.zero_grad(set_to_none=True)
        model(**inputs, labels=labels).loss.backward()

    return timed(step, repeats)


def scan_section() -> list[str]:
    from transformers import MambaConfig
    from transformers.models.mamba.modeling_mamba import MambaMixer as TransformersMambaMixer
    from transformers.models.mamba.modeling_mamba import mamba_selective_scan

    torch.manual_seed(0)
    batch, frames, d_model, states = 8, 500, 64, 16
    inner = 2 * d_model
    u = torch.randn(batch, frames, inner, requires_grad=True)
    delta = torch.nn.functional.softplus(torch.randn(batch, frames, inner)).requires_grad_()
    A = (-torch.rand(inner, states) * 4).requires_grad_()
    B = torch.randn(batch, frames, states, requires_grad=True)
    C = torch.randn(batch, frames, states, requires_grad=True)
    D = torch.randn(inner, requires_grad=True)

    def ours():
        selective_scan(u, delta, A, B, C, D).sum().backward()

    def transformers_fallback():
        mamba_selective_scan(
            u.transpose(1, 2), delta.transpose(1, 2), A, B.transpose(1, 2), C.transpose(1, 2), D
        ).sum().backward()

    x = torch.randn(batch, frames, d_model, requires_grad=True)
    config = MambaConfig(hidden_size=d_model, state_size=states, expand=2, conv_kernel=4, num_hidden_layers=1)
    theirs_mixer = TransformersMambaMixer(config, layer_idx=0).train()
    our_mixer = MambaMixer(d_model, state_size=states, expand=2, conv_kernel=4, time_step_rank=None).train()
    rows = []
    for label, fast, slow in [
        ("selective scan alone (inner width 128, 16 states)", ours, transformers_fallback),
        (
            "whole Mamba mixer (d_model 64)",
            lambda: our_mixer(x).sum().backward(),
            lambda: theirs_mixer(x).sum().backward(),
        ),
    ]:
        fast_s, slow_s = timed(fast, 5), timed(slow, 2)
        rows.append(f"| {label} | {slow_s * 1000:.0f} | {fast_s * 1000:.0f} | {slow_s / fast_s:.1f}x |")
        print(rows[-1], flush=True)
    return rows


def profile_usev_base(seconds: float = 4.0) -> tuple[float, list[str]]:
    from torch.profiler import profile

    model = build("usev-base", lip_input="embeddings").train()
    inputs = model_inputs(model, 4, seconds)
    labels = torch.randn_like(inputs["input_values"])
    model(**inputs, labels=labels).loss.backward()
    with profile() as recorder:
        model(**inputs, labels=labels).loss.backward()
    events = recorder.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    lstm = sum(event.self_cpu_time_total for event in events if "rnn" in event.key)
    top = sorted(events, key=lambda event: event.self_cpu_time_total, reverse=True)[:5]
    return lstm / total, [f"{event.key} {100 * event.self_cpu_time_total / total:.0f}%" for event in top]


def peak_memory_worker(name: str, seconds: float) -> None:
    """Prints the peak resident set size above the level just before one inference, sampled every 2 ms."""
    model = build(name).eval()
    inputs = model_inputs(model, 1, seconds)
    with torch.inference_mode():
        model(**model_inputs(model, 1, 1.0))
        growth = peak_growth_mb(lambda: model(**inputs))
    print(json.dumps({"peak_growth_mb": growth}))


def peak_memory(name: str, seconds: float = 60.0) -> float:
    result = subprocess.run(
        [sys.executable, __file__, "--memory-worker", name, "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_growth_mb"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="Markdown file whose backbone section is replaced")
    parser.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_worker:
        peak_memory_worker(args.memory_worker, args.seconds)
        return

    scan_rows = scan_section()

    preset_rows = []
    for name in TSE_PRESETS + SE_PRESETS:
        model = build(name)
        parameters = sum(p.numel() for p in model.parameters()) / 1e6
        rtf, step, memory = real_time_factor(model), training_step(model), peak_memory(name)
        lips = model.config.lip_input or "audio only"
        preset_rows.append(f"| {name} | {lips} | {parameters:.2f} | {rtf:.3f} | {step:.2f} | {memory:.0f} |")
        print(preset_rows[-1], flush=True)

    reference = ReferenceUSEV()
    ours = build("usev-base", lip_input="embeddings")
    comparison_rows = []
    for label, model, forward in [
        ("original USEV network (reference_usev.py)", reference, lambda m, i: m(i["input_values"], i["lip_embeds"])),
        ("usev-base, lip_input=embeddings", ours, lambda m, i: m(**i).waveform),
    ]:
        model.eval()
        inputs = model_inputs(ours, 1, 4.0)
        with torch.inference_mode():
            rtf = timed(functools.partial(forward, model, inputs), 3) / 4.0
        model.train()
        inputs = model_inputs(ours, 4, 4.0)
        target = torch.randn_like(inputs["input_values"])
        step = functools.partial(cosine_training_step, model, forward, inputs, target)
        comparison_rows.append(
            f"| {label} | {sum(p.numel() for p in model.parameters()):,} | {rtf:.3f} | {timed(step, 2):.2f} |"
        )
        print(comparison_rows[-1], flush=True)

    lstm_share, top_ops = profile_usev_base()
    body = (
        f"{SECTION}\n\n"
        f"Command: `python benchmarks/bench_backbones.py --out docs/benchmarks.md` ({machine_line()}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, float32).\n\n"
        "### Selective scan, forward + backward, batch 8 x 500 frames\n\n"
        "Both in the same process on the same inputs; transformers falls back to its sequential PyTorch scan "
        "because `mamba_ssm` needs CUDA.\n\n"
        "| what | transformers fallback (ms) | elegance (ms) | speed-up |\n|---|---|---|---|\n"
        + "\n".join(scan_rows)
        + "\n\n### Presets\n\n"
        "Real-time factor: inference time / audio duration, batch 1, 4 s at 16 kHz. Training step: forward + backward "
        "of the SI-SDR loss, batch 4 x 3 s. Peak memory: peak resident set size during one inference on a 60 s "
        "input (batch 1, fresh process, sampled every 2 ms) above the level just before it.\n\n"
        "| preset | lip input | parameters (M) | RTF | training step (s) | 60 s peak memory (MB) |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(preset_rows) + "\n\n"
        "### usev-base against the original USEV network, identical sizes\n\n"
        "Same process, same inputs: RTF at batch 1 x 4 s, training step (forward + backward) at batch 4 x 4 s.\n\n"
        "| network | parameters | RTF | training step (s) |\n|---|---|---|---|\n" + "\n".join(comparison_rows) + "\n\n"
        f"Profile of a usev-base training step (4 x 4 s): the oneDNN LSTM kernels take {100 * lstm_share:.0f}% of "
        f"the CPU time. Top operators by self time: {', '.join(top_ops)}.\n"
    )
    if args.out:
        replace_section(args.out, SECTION, body)
    print(body)


if __name__ == "__main__":
    main()
