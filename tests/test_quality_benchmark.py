"""The quality benchmark end to end at a toy budget: training, evaluation, text-informed scoring, the report, and
resuming without redoing finished runs (slow: about 2 minutes)."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_quality_benchmark_runs_reports_and_resumes(tiny_corpus_path, tmp_path):
    command = [
        sys.executable,
        "bench_quality.py",
        "--data",
        tiny_corpus_path,
        "--workdir",
        str(tmp_path / "work"),
        "--max_steps",
        "2",
        "--pslm_steps",
        "2",
        "--seeds",
        "0,1",
        "--max_eval_examples",
        "6",
        "--configs",
        "usev-tiny:none;usev-tiny:input;usev-se-tiny:none;usev-se-tiny:cmkt",
        "--out",
        str(tmp_path / "results.md"),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"}
    first = subprocess.run(
        command, cwd=os.path.join(REPO, "benchmarks"), env=env, capture_output=True, text=True, check=True
    )
    report = open(tmp_path / "results.md").read()
    assert "| usev-tiny | input | " in report and "| usev-se-tiny | cmkt | " in report
    assert "text-informed extraction" in report
    assert len(os.listdir(tmp_path / "work" / "results")) == 8
    second = subprocess.run(
        command, cwd=os.path.join(REPO, "benchmarks"), env=env, capture_output=True, text=True, check=True
    )
    assert second.stdout.count("done before, kept") == 8 and "done before" not in first.stdout
    assert open(tmp_path / "results.md").read().split("\n", 3)[3] == report.split("\n", 3)[3]  # same table


def test_each_benchmark_rewrites_only_its_own_part_of_results_md(tmp_path):
    """docs/results.md holds the guidance benchmark's part and the recognition benchmark's; each run replaces its own
    top-level section, its subsections included, and keeps the other's."""
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    from bench_report import replace_section

    path = str(tmp_path / "results.md")
    replace_section(path, "# Guidance", "# Guidance\n\nold table\n\n## Reading\n\nold reading\n", level=1)
    replace_section(path, "# Recognition", "# Recognition\n\nWER table\n", level=1)
    replace_section(path, "# Guidance", "# Guidance\n\nnew table\n", level=1)
    assert open(path).read() == "# Guidance\n\nnew table\n\n# Recognition\n\nWER table\n"
