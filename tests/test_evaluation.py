"""Metrics against their references, the evaluate modules offline, and elegance-evaluate's output schema."""

import json
import math
import os

import numpy as np
import pytest
import torch

from training.evaluation import metrics
from training.evaluation.scoring import ExtractionEvaluator, activity_sample_mask, oracle_estimate

MODULES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "training", "evaluation", "metric_modules"
)


@pytest.fixture(scope="module")
def signals():
    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(5, 8000, generator=generator, dtype=torch.float64)
    estimate = (
        reference
        + torch.randn(5, 8000, generator=generator, dtype=torch.float64) * torch.linspace(0.1, 2.0, 5)[:, None]
    )
    return estimate, reference


def test_si_sdr_and_sdr_match_torchmetrics(signals):
    from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio, signal_distortion_ratio

    estimate, reference = signals
    expected_si = scale_invariant_signal_distortion_ratio(estimate, reference, zero_mean=True).numpy()
    expected_sdr = signal_distortion_ratio(estimate, reference).numpy()
    assert np.abs(metrics.si_sdr(estimate, reference) - expected_si).max() < 1e-4
    assert np.abs(metrics.sdr(estimate, reference) - expected_sdr).max() < 1e-4
    assert len(set(np.round(expected_sdr, 3))) == 5  # five different noise levels, five different scores


def test_the_sdr_solve_survives_the_batched_multithreaded_lu_bug():
    """pytorch/pytorch#142815: a batched `torch.linalg.solve` on 2 threads fails on two identity matrices; the
    Cholesky solve that SDR uses returns the exact answer."""
    from training.evaluation.metrics import solve_symmetric

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        matrices = torch.eye(151, dtype=torch.float64).repeat(2, 1, 1)
        vectors = torch.arange(302, dtype=torch.float64).view(2, 151)
        assert torch.equal(solve_symmetric(matrices, vectors), vectors)
        semi_definite = torch.zeros(1, 3, 3, dtype=torch.float64)
        semi_definite[0, 0, 0] = 2.0  # rank 1: least squares
        assert solve_symmetric(semi_definite, torch.tensor([[4.0, 0.0, 0.0]], dtype=torch.float64)).tolist() == [
            [2.0, 0.0, 0.0]
        ]
    finally:
        torch.set_num_threads(threads)


def test_invariances_and_silence(signals):
    estimate, reference = signals
    base = metrics.si_sdr(estimate, reference)
    assert np.allclose(metrics.si_sdr(3.7 * estimate, reference), base, atol=1e-9)
    assert np.allclose(metrics.si_sdr(estimate, 0.2 * reference), base, atol=1e-9)
    assert np.allclose(metrics.si_sdr(estimate + 0.5, reference), base, atol=1e-9)  # zero-mean
    assert np.allclose(metrics.sdr(0.1 * estimate, reference), metrics.sdr(estimate, reference), atol=1e-9)
    silent_reference = reference.clone()
    silent_reference[2] = 0
    scores = metrics.si_sdr(estimate, silent_reference)
    assert math.isnan(scores[2]) and np.isfinite(np.delete(scores, 2)).all()
    assert math.isnan(metrics.sdr(estimate, silent_reference)[2])
    silent_estimate = estimate.clone()
    silent_estimate[0] = 0
    assert metrics.si_sdr(silent_estimate, reference)[0] == -math.inf
    assert metrics.sdr(silent_estimate, reference)[0] == -math.inf
    assert metrics.sdr(reference, reference).min() > 140 and metrics.si_sdr(reference, reference).min() > 140
    # a 20 dB case: noise at a tenth of the amplitude, orthogonal (whole periods) and zero-mean by construction
    t = torch.arange(16000, dtype=torch.float64) / 16000
    clean, noise = torch.sin(2 * math.pi * 50 * t), torch.sin(2 * math.pi * 311 * t)
    assert abs(metrics.si_sdr(clean + 0.1 * noise, clean)[0] - 20.0) < 1e-6


def test_length_mismatch_is_a_clear_error():
    with pytest.raises(
        ValueError,
        match=r"^estimate has shape \(1, 100\) but reference \(1, 120\); they must have the same number of rows and samples",
    ):
        metrics.si_sdr(np.zeros(100), np.ones(120))
    with pytest.raises(
        ValueError, match=r"^estimate has shape \(2, 3, 4\); expected \(samples,\) or \(batch, samples\)$"
    ):
        metrics.sdr(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)))


def test_improvement_is_zero_for_the_mixture(signals):
    estimate, reference = signals
    assert np.allclose(metrics.improvement(metrics.si_sdr, estimate, estimate, reference), 0.0)


def speech_like(seconds=2.0, seed=0):
    """A voiced, syllabic test signal PESQ and STOI accept as speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    envelope = np.clip(np.sin(2 * np.pi * 3 * t), 0, None) ** 2
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 20))
    return (0.1 * envelope * voice + 0.001 * rng.standard_normal(len(t))).astype(np.float64)


def test_pesq_and_stoi_wrap_their_references_row_by_row():
    from pesq import pesq
    from pystoi import stoi

    clean = speech_like()
    noisy = np.stack([clean + 0.02 * np.random.default_rng(s).standard_normal(len(clean)) for s in (1, 2)])
    reference = np.stack([clean, clean])
    assert np.allclose(metrics.pesq_wideband(noisy, reference), [pesq(16000, clean, row, "wb") for row in noisy])
    assert np.allclose(metrics.stoi(noisy, reference), [stoi(clean, row, 16000) for row in noisy])
    assert np.allclose(
        metrics.stoi(noisy, reference, extended=True), [stoi(clean, row, 16000, extended=True) for row in noisy]
    )
    assert metrics.pesq_wideband(clean, clean)[0] > 4.5 > metrics.pesq_wideband(noisy[0], clean)[0]
    assert metrics.stoi(clean, clean)[0] > 0.999
    assert math.isnan(metrics.pesq_wideband(clean, np.zeros_like(clean))[0])
    with pytest.raises(ValueError, match="^wide-band PESQ needs 16000 Hz audio, got 8000 Hz; resample first$"):
        metrics.pesq_wideband(clean, clean, sampling_rate=8000)


def test_word_error_rate():
    assert metrics.word_errors("The cat, sat!", "the cat sat down") == (1, 4)
    assert metrics.word_error_rate(["a b c", "x"], ["a c", "y z"]) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="^the references hold no words; WER is undefined$"):
        metrics.word_error_rate([""], ["..."])


@pytest.mark.parametrize(
    "name,function",
    [("si_sdr", metrics.si_sdr), ("sdr", metrics.sdr), ("pesq", metrics.pesq_wideband), ("stoi", metrics.stoi)],
)
def test_evaluate_modules_load_offline_and_agree_with_the_functions(name, function):
    import evaluate

    clean = speech_like(seed=3)
    noisy, noisier = (clean + level * np.random.default_rng(4).standard_normal(len(clean)) for level in (0.01, 0.05))
    result = evaluate.load(os.path.join(MODULES, name)).compute(predictions=[noisy, noisier], references=[clean, clean])
    expected = np.concatenate([function(noisy, clean), function(noisier, clean)])
    assert expected[0] != pytest.approx(expected[1])
    assert np.allclose(result[f"{name}_per_example"], expected, atol=1e-4)  # the module passes float32 features
    assert result[name] == pytest.approx(float(np.mean(result[f"{name}_per_example"])))


def test_character_error_rate_and_empty_sides():
    from training.evaluation.metrics import character_error_rate, word_error_rate

    assert character_error_rate(["The bat!"], ["the cat"]) == pytest.approx(1 / 7)
    assert character_error_rate(["", "ab"], ["ab", "ab"]) == pytest.approx(2 / 4)
    assert word_error_rate([""], ["a b"]) == 1.0 and word_error_rate(["a b c"], ["a b"]) == 0.5
    with pytest.raises(ValueError, match=r"^got 1 hypotheses for 2 references; pass one per reference$"):
        character_error_rate(["a"], ["a", "b"])


def test_wer_module():
    import evaluate

    assert evaluate.load(os.path.join(MODULES, "wer")).compute(
        predictions=["the cat sat"], references=["the cat sat down"]
    ) == {"wer": 0.25}


def test_activity_mask_and_oracle():
    mask = activity_sample_mask(np.array([0, 1, 1, 0]), 2560, fps=25, sampling_rate=16000)
    assert mask[:640].sum() == 0 and mask[640:1920].all() and mask[1920:].sum() == 0
    from modeling_elegance import UsevForTargetSpeechExtraction, preset_config

    torch.manual_seed(0)
    model = UsevForTargetSpeechExtraction(preset_config("usev-tiny")).eval()
    target = torch.randn(2, 8000)
    # no interferer: the ideal mask is 1 wherever the encoder responds, so the oracle is the codec's reconstruction
    with torch.inference_mode():
        reconstruction = model.decoder(model.encoder(target), 8000)
    assert torch.allclose(oracle_estimate(model, target, target), reconstruction, atol=1e-6)


def test_elegance_evaluate_writes_every_scenario(tiny_corpus_path, saved_models, tmp_path):
    from training.evaluation.cli import ALL_SPLITS, main

    out = str(tmp_path / "results.json")
    assert (
        main(
            [
                "--model",
                saved_models["usev-tiny"],
                "--audio_only_model",
                saved_models["usev-se-tiny"],
                "--data",
                tiny_corpus_path,
                "--out",
                out,
                "--max_examples",
                "18",
                "--num_workers",
                "2",
                "--asr",
                "none",
            ]
        )
        == 0
    )
    results = json.load(open(out))
    assert list(results["splits"]) == list(ALL_SPLITS)
    for split, summary in results["splits"].items():
        assert set(summary["systems"]) == {"model", "mixture", "audio_only", "oracle"}
        for system, values in summary["systems"].items():
            assert set(values) == {"si_sdr", "si_sdri", "sdr", "sdri", "pesq", "stoi", "estoi"}
            assert all(value is not None and np.isfinite(value) for value in values.values()), (split, system, values)
        assert summary["systems"]["mixture"]["si_sdri"] == 0.0
        assert summary["fraction_of_oracle"] == pytest.approx(
            summary["systems"]["model"]["si_sdri"] / summary["systems"]["oracle"]["si_sdri"]
        )
    impaired = results["splits"]["test_impaired"]["si_sdri_by_impairment"]
    assert set(impaired) == {"full_mask", "occlusion", "low_resolution"}
    assert all(list(row) == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"] for row in impaired.values())
    assert set(results["splits"]["test_unseen_lang"]["by_language"]) == {"it", "pt", "es", "fr"}
    noisy = results["splits"]["test_noisy"]
    assert list(noisy["by_snr"]) == ["-5", "0", "5", "10", "15"]
    assert set(noisy["si_sdri_by_noise"]) == {"coloured", "babble", "nonstationary"}
    for snr, row in noisy["by_snr"].items():
        # the mixture's SI-SDR is close to the SNR it was mixed at (exactly so were the noise orthogonal to the
        # target; 3 s of brown noise is not quite, and its projection on the target moves SI-SDR by up to ~0.6 dB)
        assert row["mixture"]["si_sdr"] == pytest.approx(float(snr), abs=1.0)
        assert set(row) == {"model", "mixture", "audio_only", "oracle"} and set(row["model"]) >= {"pesq", "stoi"}
    pairs = results["splits"]["test"]["by_voice_pair"]
    registers = {"high", "low", "unvoiced"}
    assert (
        all(set(pair.split("-")) <= registers for pair in pairs)
        and sum(r["examples"] for r in pairs.values()) == results["splits"]["test"]["examples"]
    )
    assert all(set(row) == {"examples", "model", "mixture", "audio_only", "oracle"} for row in pairs.values())
    assert "by_voice_pair" not in noisy  # speech in noise has no interfering talker
    switch = results["splits"]["test_switch"]["activity_aware"]
    assert switch["mixture"]["silent_energy_db"] == 0.0 and set(switch) == {"model", "mixture", "audio_only", "oracle"}
    examples = json.load(open(str(tmp_path / "results_examples.json")))
    assert list(examples) == list(ALL_SPLITS)
    for split, summary in results["splits"].items():
        assert len(examples[split]) == summary["examples"]
        assert np.mean([r["model"]["si_sdri"] for r in examples[split]]) == pytest.approx(
            summary["systems"]["model"]["si_sdri"]
        )
    report = open(str(tmp_path / "results.md")).read()
    assert "## test_impaired (18 examples)" in report and "| audio_only |" in report
    assert "Model SI-SDRi (dB) by noise type and SNR:" in report and "| -5 | model |" in report
    assert "SI-SDRi (dB) by the registers of the target and the (first) interfering voice (high: median pitch" in report
    assert open(str(tmp_path / "results_impaired.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_silent_energy_does_not_depend_on_the_estimates_scale():
    """An SI-SDR-trained model's output has any scale and sign; its energy where the target is silent is measured
    after bringing it to the mixture's scale, so x50 or x-3 read the same."""
    generator = torch.Generator().manual_seed(0)
    target, interferer = torch.zeros(2560), torch.randn(2560, generator=generator)
    target[640:1920] = torch.randn(1280, generator=generator)  # speaks in video frames 1 and 2 of 4
    mixture, estimate = target + interferer, target + 0.1 * interferer
    rows = {"target_activity": [np.array([0, 1, 1, 0])], "fps": [25], "sampling_rate": [16000]}
    evaluator = ExtractionEvaluator.__new__(ExtractionEvaluator)
    silent = [
        evaluator._activity_scores({"model": (scale * estimate)[None]}, mixture, target, rows, 0)["model"][
            "silent_energy_db"
        ]
        for scale in (1.0, 50.0, -3.0)
    ]
    assert silent[1] == pytest.approx(silent[0], abs=1e-4) and silent[2] == pytest.approx(silent[0], abs=1e-4)
    # where only the interferer is heard the estimate is a tenth of it, times the least-squares scale to the mixture
    scale = float(torch.dot(mixture, estimate) / torch.dot(estimate, estimate))
    assert silent[0] == pytest.approx(20 * np.log10(0.1 * scale), abs=1e-3)


def test_audio_only_model_must_be_audio_only(tiny_corpus_path, saved_models, tmp_path):
    from training.evaluation.cli import evaluate_model

    with pytest.raises(ValueError, match=r"takes lips; pass an audio-only \(...-se-...\) model$"):
        evaluate_model(
            saved_models["usev-tiny"],
            tiny_corpus_path,
            ["test"],
            str(tmp_path / "r.json"),
            audio_only_model=saved_models["usev-tiny"],
        )


def test_text_informed_extraction_gives_the_prior_to_an_input_guidance_model(tiny_corpus_path, tmp_path):
    from modeling_elegance import MODEL_CLASSES, preset_config
    from processing import EleganceProcessor
    from training.evaluation.cli import evaluate_model

    torch.manual_seed(0)
    config = preset_config("usev-tiny", prior_embedding_dim=384)
    model = MODEL_CLASSES[type(config)](config)
    with torch.no_grad():  # make the fusion matter: an untrained gate lets little through
        model.extractor.prior_fusion.gate.bias.fill_(5.0)
    model.save_pretrained(tmp_path / "input_guided")
    EleganceProcessor.from_defaults(lip_roi_size=48).save_pretrained(tmp_path / "input_guided")
    common = dict(perceptual=False, max_examples=4, embedding_cache_dir=str(tmp_path / "cache"))
    plain = evaluate_model(
        str(tmp_path / "input_guided"), tiny_corpus_path, ["test"], str(tmp_path / "a.json"), **common
    )
    informed = evaluate_model(
        str(tmp_path / "input_guided"),
        tiny_corpus_path,
        ["test"],
        str(tmp_path / "b.json"),
        text_informed_llm="default",
        **common,
    )
    assert informed["text_informed_llm"] == "default"
    assert (
        informed["splits"]["test"]["systems"]["model"]["si_sdr"]
        != plain["splits"]["test"]["systems"]["model"]["si_sdr"]
    )
    assert informed["splits"]["test"]["systems"]["oracle"] == plain["splits"]["test"]["systems"]["oracle"]


def test_text_informed_extraction_needs_a_prior(tiny_corpus_path, saved_models, tmp_path):
    from training.evaluation.cli import evaluate_model

    with pytest.raises(
        ValueError,
        match="^text-informed extraction needs a model trained with input guidance on 384-wide LLM embeddings; this model's prior_embedding_dim is None$",
    ):
        evaluate_model(
            saved_models["usev-tiny"],
            tiny_corpus_path,
            ["test"],
            str(tmp_path / "r.json"),
            perceptual=False,
            max_examples=2,
            text_informed_llm="default",
            embedding_cache_dir=str(tmp_path / "cache"),
        )
