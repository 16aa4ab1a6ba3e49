"""Training throughput on this CPU machine: one process on every core against data-parallel processes (gloo), one
thread each, through the package's own CLI.

    python benchmarks/bench_data_parallel.py --data data/default --out docs/benchmarks.md

Each configuration trains the same model (`usev-tiny` with 256 encoder filters and the shipped lip reader, frozen,
as the shipped extractor) for ``--steps`` steps of ``--batch`` examples per process, from the same seed. The rate is
measured between the first and the last logged step (every ``--logging_steps``), so start-up, the lip-embedding
cache's first fill and the data loader's warm-up are left out. The machine must be otherwise idle: both
configurations use every core.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
import tempfile

from bench_report import machine_line, replace_section

SECTION = "## Data-parallel training on the CPU"
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWO_PROCESS_CONFIG = os.path.join(REPOSITORY, "training", "configs", "cpu_two_processes.yaml")
LOG_LINE = re.compile(r"\{'loss'[^}]*\}")


def training_arguments(args, output_dir: str) -> list[str]:
    return [
        "--backbone", "usev-tiny", "--config_overrides", "encoder_channels=256",
        "--data", args.data, "--lip_encoder", args.lip_encoder, "--output_dir", output_dir,
        "--max_steps", str(args.steps), "--per_device_train_batch_size", str(args.batch),
        "--logging_steps", str(args.logging_steps), "--eval_split", "none", "--save_strategy", "no", "--seed", "0",
    ]  # fmt: skip


def logged_minutes(output: str) -> list[float]:
    """The ``wall_minutes`` of every logged training step, in order."""
    return [float(ast.literal_eval(match)["wall_minutes"]) for match in LOG_LINE.findall(output.replace("\r", "\n"))]


def measure(args, processes: int) -> dict:
    """Runs the training CLI with ``processes`` data-parallel processes; returns steps and examples a second."""
    threads = os.cpu_count() // processes
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": REPOSITORY}
    with tempfile.TemporaryDirectory() as output_dir:
        if processes == 1:
            command = [sys.executable, "-m", "training.train", *training_arguments(args, output_dir)]
        else:
            environment["ACCELERATE_USE_CPU"] = "1"
            launcher = os.path.join(os.path.dirname(sys.executable), "accelerate")
            command = [launcher, "launch", "--config_file", TWO_PROCESS_CONFIG,
                       "--num_processes", str(processes), "-m", "training.train", *training_arguments(args, output_dir)]  # fmt: skip
        finished = subprocess.run(command, env=environment, capture_output=True, text=True, cwd=REPOSITORY)
    if finished.returncode != 0:
        raise RuntimeError(f"training with {processes} process(es) failed:\n{finished.stderr[-3000:]}")
    minutes = logged_minutes(finished.stdout + finished.stderr)
    if len(minutes) < 2:
        raise RuntimeError(
            f"need at least two logged steps; raise --steps above 2 x --logging_steps ({args.logging_steps})"
        )
    steps_per_second = (len(minutes) - 1) * args.logging_steps / ((minutes[-1] - minutes[0]) * 60)
    global_batch = args.batch * processes
    return {
        "processes": processes,
        "threads": threads,
        "global_batch": global_batch,
        "seconds_per_step": 1 / steps_per_second,
        "examples_per_second": steps_per_second * global_batch,
    }


def report(results: list[dict], args) -> str:
    single = results[0]["examples_per_second"]
    rows = "\n".join(
        f"| {row['processes']} | {row['threads']} | {row['global_batch']} | {row['seconds_per_step']:.3f} s "
        f"| {row['examples_per_second']:.1f} | {row['examples_per_second'] / single:.2f}x |"
        for row in results
    )
    return f"""{SECTION}

`python benchmarks/bench_data_parallel.py --data {args.data} --steps {args.steps}` ({machine_line()}, nothing else
running). `usev-tiny` with 256 encoder filters and the frozen shipped lip reader (the shipped extractor's
setting), {args.batch} x 3 s examples per process, {args.steps} steps; the rate is taken between the first and the
last of the logged steps (every {args.logging_steps}). Two processes run through
`ACCELERATE_USE_CPU=1 accelerate launch --config_file training/configs/cpu_two_processes.yaml` (gloo).

| processes | threads each | examples a step | time a step | examples a second | against one process |
|---|---|---|---|---|---|
{rows}

{results[-1]["processes"]} processes train on {results[-1]["examples_per_second"] / single:.2f} times the examples a second of one process, and
each of their steps holds {results[-1]["processes"]} times the examples, so the same examples make
1/{results[-1]["processes"]} of the updates.
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/default")
    parser.add_argument("--lip_encoder", default="pretrained/lip-reader")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=4, help="examples a step in each process")
    parser.add_argument("--logging_steps", type=int, default=50)
    parser.add_argument("--out", default=None, help="markdown file whose section to replace (default: print)")
    args = parser.parse_args(argv)
    results = [measure(args, processes) for processes in (1, 2)]
    text = report(results, args)
    if args.out:
        replace_section(args.out, SECTION, text)
    print(text)


if __name__ == "__main__":
    main()
