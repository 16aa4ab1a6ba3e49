"""The quality benchmark end to end at a toy budget: training, evaluation, text-informed scoring, the report, and
resuming without redoing finished runs (slow: about 2 minutes)."""

import os
import subprocess
import sys

import numpy as np
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


def test_the_cmkt_benchmark_reports_each_metric_by_snr_and_the_shift_sweep():
    """bench_noisy.report: a row per (backbone, guidance) with the mean over seeds, the WER rows of the first seed's
    runs, and the shift sweep of one seed."""
    import argparse

    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    from bench_noisy import report

    def result(guidance, shift, seed, si_sdri):
        metrics = {"si_sdri": si_sdri, "pesq": 1.5, "stoi": 0.8}
        wer = {"-5": {"model": 0.5, "mixture": 0.75, "reference": 0.25}} if seed == 0 and shift == 2 else None
        run = {"backbone": "usev-se-tiny", "guidance": guidance, "shift": shift, "seed": seed}
        return {**run, "by_snr": {"-5": metrics}, "wer_by_snr": wer}

    results = [
        result("none", 2, 0, 9.0),
        result("none", 2, 1, 11.0),
        result("cmkt", 2, 0, 8.0),
        result("cmkt", 4, 0, 7.5),
    ]
    args = argparse.Namespace(max_steps=3000, data=os.path.join(REPO, "data", "default-noisy"), seeds="0,1")
    text = report(results, args)
    assert text.startswith("# CMKT on speech in noise\n")
    assert "| usev-se-tiny | none | 2 | 10.00 ± 1.41 |" in text  # two seeds: mean and sample standard deviation
    assert "| usev-se-tiny | cmkt | 1 | 8.00 |" in text  # the shift-4 run stays out of the main table
    assert "| (mixture) | | 75.0% |" in text and "| usev-se-tiny | none | 50.0% |" in text
    assert "| 2 | 8.00 |" in text and "| 4 | 7.50 |" in text


def test_two_cmkt_benchmark_lanes_never_take_the_same_run(tmp_path):
    """bench_noisy.claimed: while one invocation holds a run's lock, another is told so (and skips the run); once it
    is released, the run can be claimed again."""
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    from bench_noisy import claimed

    lock = str(tmp_path / "usev-se-tiny-none-s0.lock")
    with claimed(lock) as first:
        with claimed(lock) as second:
            assert (first, second) == (True, False)
    with claimed(lock) as again:
        assert again


def test_the_recognition_benchmark_reports_the_ablation_the_headline_and_the_chain(tmp_path):
    """bench_recognition.report on hand-made evaluations: mean ± std over seeds, the headline at 0 dB against the
    fine-tuned audio-only baseline, and the chain table with a column per talker split that was scored."""
    import argparse
    import json

    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    from bench_recognition import report

    def write(name, split, summary):
        with open(tmp_path / f"{name}.json", "w") as stream:
            json.dump({"splits": {split: summary}}, stream)

    def noisy(av, audio_only):
        systems = {"av": av, "audio_only": audio_only, "clean": 0.2, "av_other_lips": av}
        return {"examples": 30, "wer": systems, "by_snr": {"0": systems}}

    write("audio-s0-test_noisy", "test_noisy", noisy(0.5, 0.5))
    write("audio-s1-test_noisy", "test_noisy", noisy(0.7, 0.7))
    write("amf-s0-test_noisy", "test_noisy", noisy(0.3, 0.6))
    write("audio-long-s0-test_noisy", "test_noisy", noisy(0.4, 0.4))
    write("lips-on-audio-s0-test_noisy", "test_noisy", noisy(0.2, 0.4))
    write(
        "lips-s1-test_noisy", "test_noisy", {**noisy(0.4, 0.6), "wer": {**noisy(0.4, 0.6)["wer"], "av_other_lips": 0.8}}
    )
    chain = {"av": 0.9, "audio_only": 0.95, "extracted": 0.6, "clean": 0.25}
    write("chain-amf-s0-test", "test", {"examples": 100, "wer": chain})
    write("chain-amf-s0-test_impaired", "test_impaired", {"examples": 100, "wer": {**chain, "extracted": 0.7}})
    args = argparse.Namespace(
        seeds="0,1",
        workdir=str(tmp_path),
        vur_seeds="",
        zero_shot=None,
        max_steps=300,
        data=os.path.join(REPO, "data", "default-noisy"),
        talker_data=os.path.join(REPO, "data", "default"),
        extractor=os.path.join(REPO, "pretrained", "usev-tiny"),
        chain_seed=0,
        chain_examples=100,
        recogniser_kind="amf",
    )
    text = report(args)
    assert text.startswith("# Recognition in noise: the AVUR-LLM ablation\n")
    assert "| audio-only Whisper, fine-tuned (LoRA) | 2 | 60.0 ± 14.1 | 60.0 ± 14.1 |" in text
    assert "| SMA + AMF | 1 | 30.0 | 30.0 |" in text and "| SMA + AMF, its lips withheld | 1 | 60.0 | 60.0 |" in text
    assert "- SMA + AMF: +50.0%" in text  # 30% against the baseline's 60% at 0 dB
    recipe = "AMF, lip-reading recipe (no SMA, aligned read, frozen probe)"
    assert f"| {recipe} | 1 | 40.0 | 40.0 |" in text and f"| {recipe}, another clip's lips | 1 | 80.0 | 40.0 |" in text
    assert "lip-reading recipe, Whisper frozen" not in text  # a kind without results has no rows
    assert "| audio-only Whisper, fine-tuned (LoRA), twice the steps | 1 | 40.0 | 40.0 |" in text
    two_stage = "fine-tuned audio-only Whisper, then the lip-reading recipe on top (two stages)"
    assert f"- {two_stage}: +66.7%" in text  # 20% against the audio baseline's 60%
    assert (
        f"- {two_stage}, against the baseline of the same budget (audio-only Whisper, fine-tuned (LoRA), "
        "twice the steps, 40.0% WER): +50.0%" in text
    )
    assert "| input to the recogniser | WER, `test` (100) | WER, `test_impaired` (100) |" in text
    assert "| extracted by `pretrained/usev-tiny` (with the lips), recognised with the lips | 60.0% | 70.0% |" in text


def test_the_recognition_benchmark_names_its_kinds_in_order_and_the_flags_each_adds():
    """parse_kinds, and what each kind adds: the two-stage kind names the audio run of its seed as its Whisper."""
    import argparse

    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    from bench_recognition import kind_flags, parse_kinds

    assert parse_kinds("lips, audio") == ["audio", "lips"]
    assert parse_kinds("lips-on-audio") == ["audio", "lips-on-audio"]  # the run it is built on comes first
    with pytest.raises(SystemExit, match=r"--kinds takes comma-separated names among audio, sma, amf, lips, "):
        parse_kinds("audio,lipz")
    args = argparse.Namespace(workdir="work", max_steps=300)
    on_audio = kind_flags(args, "lips-on-audio", 2)
    assert on_audio[-2:] == ["--whisper", os.path.join("work", "audio-s2", "avsr")]
    assert on_audio[on_audio.index("--whisper_lora_rank") + 1] == "0" and "--freeze_acoustic_probe" in on_audio
    assert kind_flags(args, "audio-long", 0) == ["--audio_only", "--max_steps", "600"]


def test_the_batch_centered_read_cancels_whatever_the_fusion_adds_to_every_clip(random_whisper):
    """diagnose_avsr_visual_oracle.center_the_fusion_on_the_batch: with the gate open, a batch whose clips share one
    visual stream gets exactly Whisper's logits (the common injection cancels); different streams change them, and
    the injections of a batch sum to zero."""
    import torch
    from transformers import WhisperForConditionalGeneration

    from modeling_elegance import AvurForConditionalGeneration

    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    from diagnose_avsr_visual_oracle import center_the_fusion_on_the_batch

    model = AvurForConditionalGeneration.from_whisper(random_whisper, visual_dim=8, sma_layers=[]).eval()
    center_the_fusion_on_the_batch(model)
    with torch.no_grad():
        model.fusion.gate.fill_(2.0)
    whisper = WhisperForConditionalGeneration.from_pretrained(random_whisper).eval()
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(1, 80, 3000, generator=generator).repeat(3, 1, 1)  # one clip's audio, three times
    ids = torch.tensor([[whisper.config.decoder_start_token_id, 200, 300]] * 3)
    shared = torch.randn(1, 75, 8, generator=generator).repeat(3, 1, 1)
    with torch.no_grad():
        audio_only = whisper(input_features=features, decoder_input_ids=ids).logits
        same = model(features, shared, decoder_input_ids=ids).logits
        different = model(features, torch.randn(3, 75, 8, generator=generator), decoder_input_ids=ids)
    torch.testing.assert_close(same, audio_only, rtol=0, atol=1e-4)
    assert (different.logits - audio_only).abs().max() > 1e-3
    hidden, audio, visual = torch.randn(3, 4, 16), torch.randn(3, 150, 16), torch.randn(3, 75, 16)
    fused, _, _ = model.fusion(hidden, audio, visual)
    injected = fused - hidden
    torch.testing.assert_close(injected.sum(0), torch.zeros(4, 16), rtol=0, atol=1e-5)
    assert injected.abs().max() > 1e-3


def test_learning_curve_draws_several_runs_from_their_checkpoints(tiny_corpus_path, tmp_path, capsys):
    import json

    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    from learning_curve import main, mixture_si_sdr

    for run, losses in (("first", [-1.0, -2.0]), ("second", [-1.5, -3.0])):
        # a run still training: each checkpoint holds the log up to its step, and the newest one is read
        history = []
        for step, loss in zip((1000, 2000), losses):
            history.append({"step": step, "wall_minutes": step / 100, "eval_loss_extraction": loss})
            folder = tmp_path / run / f"checkpoint-{step}"
            folder.mkdir(parents=True)
            (folder / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    out = tmp_path / "curve.png"
    runs = ["--run", str(tmp_path / "first"), "--run", str(tmp_path / "second")]
    assert main([*runs, "--label", "A", "--label", "B", "--data", tiny_corpus_path, "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    baseline = mixture_si_sdr(tiny_corpus_path, "validation")
    printed = capsys.readouterr().out.splitlines()
    assert printed[1] == f"A  step   2000     20.0 min  SI-SDRi {2.0 - baseline:6.2f} dB"
    assert printed[3] == f"B  step   2000     20.0 min  SI-SDRi {3.0 - baseline:6.2f} dB"
    with pytest.raises(SystemExit, match="give one --label per --run, or none: 2 runs, 1 labels"):
        main([*runs, "--label", "A", "--data", tiny_corpus_path, "--out", str(out)])


def test_paired_comparison_of_two_evaluations(tmp_path, capsys):
    import json

    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    from paired_comparison import main, paired

    def records(gains, pairs):
        return [{"model": {"si_sdri": gain}, "voice_pair": pair} for gain, pair in zip(gains, pairs)]

    pairs = ["high-high", "low-high", "high-high", "low-low"]
    baseline, candidate = records([5.0, 8.0, 6.0, 9.0], pairs), records([7.0, 8.5, 7.0, 8.5], pairs)
    result = paired(baseline, candidate)
    assert result["baseline"] == 7.0 and result["candidate"] == 7.75 and result["difference"] == 0.75
    assert result["standard_error"] == pytest.approx(np.std([2.0, 0.5, 1.0, -0.5], ddof=1) / 2)
    assert result["better"] == 3
    assert result["by_voice_pair"]["high-high"] == {"examples": 2, "baseline": 5.5, "candidate": 7.0, "difference": 1.5}
    files = []
    for name, split_records in (("a", baseline), ("b", candidate)):
        files.append(str(tmp_path / f"{name}_examples.json"))
        (tmp_path / f"{name}_examples.json").write_text(json.dumps({"test": split_records}))
    assert main(["--baseline", files[0], "--candidate", files[1]]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("test (4 mixtures): baseline 7.00 dB, candidate 7.75 dB, difference +0.75 ± 0.52 dB")
    assert printed[1] == "  high-high (2): 5.50 -> 7.00 dB (+1.50)"
    with pytest.raises(ValueError, match=r"^the two evaluations scored 4 and 3 mixtures: evaluate both models on"):
        paired(baseline, candidate[:3])
