"""The extraction backbones: sizes, round trips, padding, the fast scan, gradients, hooks and input errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoConfig, AutoModel

from modeling_elegance import (
    MODEL_CLASSES,
    PRESETS,
    AVMambaConfig,
    AVMambaForSpeechEnhancement,
    AVMambaForTargetSpeechExtraction,
    UsevConfig,
    UsevForSpeechEnhancement,
    UsevForTargetSpeechExtraction,
    activity_aware_loss,
    preset_config,
    scale_invariant_sdr,
)
from modeling_elegance.selective_scan import selective_scan, selective_scan_reference

RATE, FPS = 16000, 25
TSE_PRESETS = ["usev-tiny", "av-mamba-tiny"]
SE_PRESETS = ["usev-se-tiny", "av-mamba-se-tiny"]


def build(name: str, **overrides):
    torch.manual_seed(0)
    config = preset_config(name, **overrides)
    return MODEL_CLASSES[type(config)](config).eval()


def inputs(model, seconds: float = 0.6, batch: int = 2, seed: int = 1) -> dict:
    generator = torch.Generator().manual_seed(seed)
    config = model.config
    samples, frames = round(seconds * RATE), round(seconds * FPS)
    values = {"input_values": torch.randn(batch, samples, generator=generator)}
    if config.lip_input == "frames":
        size = config.lip_roi_size
        values["lip_frames"] = torch.randn(batch, frames, size, size, generator=generator)
    elif config.lip_input == "embeddings":
        values["lip_embeds"] = torch.randn(batch, frames, config.lip_embedding_dim, generator=generator)
    return values


# --- sizes -------------------------------------------------------------------------------------------------------


def test_usev_base_has_the_reference_parameter_count_with_lip_embeddings():
    model = UsevForTargetSpeechExtraction(preset_config("usev-base", lip_input="embeddings"))
    count = sum(parameter.numel() for parameter in model.parameters())
    assert abs(count - 4.12e6) / 4.12e6 < 0.01, count
    assert count == 4_119_302  # N=256, L=40, B=64, H=128, R=6, V-TCN 5 x (256, 512)


def test_lip_frontend_is_resnet18_sized_and_av_mamba_base_swaps_only_the_sequence_model():
    frames = UsevForTargetSpeechExtraction(preset_config("usev-base"))
    embeddings = UsevForTargetSpeechExtraction(preset_config("usev-base", lip_input="embeddings"))
    frontend = sum(p.numel() for p in frames.visual_encoder.lip_encoder.parameters())
    assert 11.0e6 < frontend < 11.3e6  # Conv3d stem + ResNet-18 trunk, no classifier
    assert sum(p.numel() for p in frames.parameters()) - sum(p.numel() for p in embeddings.parameters()) == frontend

    mamba = AVMambaForTargetSpeechExtraction(preset_config("av-mamba-base", lip_input="embeddings"))
    usev_names = {name for name, _ in embeddings.named_parameters() if "_model." not in name}
    mamba_names = {name for name, _ in mamba.named_parameters() if "_model." not in name}
    assert usev_names == mamba_names  # everything outside the intra/inter sequence models is shared
    assert type(mamba.extractor.blocks[0].intra_model).__name__ == "BidirectionalMamba"
    assert type(embeddings.extractor.blocks[0].intra_model).__name__ == "BidirectionalLSTM"


def test_preset_config_applies_overrides_and_rejects_unknown_names():
    config = preset_config("usev-base", num_blocks=2, lip_input="embeddings")
    assert isinstance(config, UsevConfig) and config.num_blocks == 2 and config.hidden_size == 128
    assert isinstance(preset_config("av-mamba-tiny"), AVMambaConfig)
    with pytest.raises(ValueError, match=r"unknown preset 'usev-huge'; choose one of usev-base, av-mamba-base"):
        preset_config("usev-huge")
    with pytest.raises(ValueError, match=r"lip_input must be one of \('frames', 'embeddings'\), got 'video'"):
        preset_config("usev-tiny", lip_input="video")


# --- outputs, round trips and Auto classes --------------------------------------------------------------------------


@pytest.mark.parametrize("name", TSE_PRESETS + SE_PRESETS)
def test_output_shapes_and_loss(name):
    model = build(name)
    batch = inputs(model)
    labels = torch.randn_like(batch["input_values"])
    output = model(**batch, labels=labels)
    samples = batch["input_values"].shape[1]
    frames = model.encoder.num_frames(samples)
    assert output.waveform.shape == (2, samples)
    assert output.extractor_features.shape == (2, frames, model.config.bottleneck_channels)
    assert output.extractor_attention_mask.shape == (2, frames)
    expected = -scale_invariant_sdr(output.waveform, labels).mean()
    torch.testing.assert_close(output.loss, expected)


@pytest.mark.parametrize("name", TSE_PRESETS + SE_PRESETS)
def test_save_and_load_round_trip_is_bit_identical(name, tmp_path):
    model = build(name)
    batch = inputs(model)
    with torch.no_grad():
        before = model(**batch).waveform
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(reloaded) is type(model)
    with torch.no_grad():
        after = reloaded(**batch).waveform
    assert torch.equal(before, after)


def test_auto_config_maps_every_model_type():
    for config_class, model_class in MODEL_CLASSES.items():
        config = AutoConfig.for_model(config_class.model_type)
        assert type(config) is config_class
        assert type(AutoModel.from_config(preset_config(next(k for k, v in PRESETS.items() if v[0] is config_class)))) is model_class


def test_trust_remote_code_loads_without_the_package(tmp_path):
    model = build("av-mamba-tiny", prior_embedding_dim=8)
    batch = inputs(model)
    with torch.no_grad():
        expected = model(**batch).waveform
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    assert (folder / "modeling_av_mamba.py").exists() and (folder / "selective_scan.py").exists()
    torch.save({"batch": batch, "expected": expected}, tmp_path / "io.pt")
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("modeling_elegance", "processing", "training"):
                    raise ImportError(f"{{name}} is blocked: the package is not installed here")
        sys.meta_path.insert(0, Block())
        import torch
        from transformers import AutoModel
        try:
            import modeling_elegance
        except ImportError:
            pass
        else:
            raise SystemExit("modeling_elegance should not be importable")
        model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        io = torch.load({str(tmp_path / "io.pt")!r})
        with torch.no_grad():
            waveform = model(**io["batch"]).waveform
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        assert torch.equal(waveform, io["expected"]), (waveform - io["expected"]).abs().max()
        print("remote code ok", type(model).__name__)
        """
    )
    environment = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "remote code ok AVMambaForTargetSpeechExtraction" in result.stdout


# --- padding -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TSE_PRESETS)
def test_padded_batch_matches_each_example_alone(name):
    model = build(name, prior_embedding_dim=8)
    lengths_s = [0.72, 1.6]  # different numbers of chunks, and lengths that are not whole encoder hops
    examples = [inputs(model, seconds, batch=1, seed=index) for index, seconds in enumerate(lengths_s)]
    priors = [torch.randn(1, tokens, 8) for tokens in (3, 5)]
    samples = max(example["input_values"].shape[1] for example in examples)
    frames = max(example["lip_frames"].shape[1] for example in examples)
    batch = {
        "input_values": torch.zeros(2, samples),
        "audio_attention_mask": torch.zeros(2, samples, dtype=torch.long),
        "lip_frames": torch.full((2, frames, *examples[0]["lip_frames"].shape[2:]), 3.0),  # padding is not zero
        "video_attention_mask": torch.zeros(2, frames, dtype=torch.long),
        "prior_embeds": torch.full((2, 5, 8), 7.0),
        "prior_attention_mask": torch.zeros(2, 5, dtype=torch.long),
    }
    for row, (example, prior) in enumerate(zip(examples, priors)):
        n, f, t = example["input_values"].shape[1], example["lip_frames"].shape[1], prior.shape[1]
        batch["input_values"][row, :n] = example["input_values"][0]
        batch["audio_attention_mask"][row, :n] = 1
        batch["lip_frames"][row, :f] = example["lip_frames"][0]
        batch["video_attention_mask"][row, :f] = 1
        batch["prior_embeds"][row, :t] = prior[0]
        batch["prior_attention_mask"][row, :t] = 1
    with torch.no_grad():
        together = model(**batch)
        for row, (example, prior) in enumerate(zip(examples, priors)):
            alone = model(**example, prior_embeds=prior)
            n = example["input_values"].shape[1]
            torch.testing.assert_close(together.waveform[row, :n], alone.waveform[0], atol=2e-5, rtol=1e-4)
            assert torch.all(together.waveform[row, n:] == 0)
            frames_alone = alone.extractor_features.shape[1]
            torch.testing.assert_close(
                together.extractor_features[row, :frames_alone], alone.extractor_features[0], atol=2e-5, rtol=1e-4
            )
            assert together.extractor_attention_mask[row].sum() == frames_alone


def test_padded_loss_matches_unpadded_loss():
    model = build("usev-se-tiny")
    audio, target = torch.randn(1, 9000), torch.randn(1, 9000)
    padded = torch.nn.functional.pad(audio, (0, 3000), value=5.0)
    padded_target = torch.nn.functional.pad(target, (0, 3000), value=-5.0)
    mask = torch.cat([torch.ones(1, 9000), torch.zeros(1, 3000)], dim=1)
    with torch.no_grad():
        alone = model(audio, labels=target).loss
        together = model(padded, audio_attention_mask=mask, labels=padded_target).loss
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-5)


# --- the selective scan ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 1, 4, 2), (2, 37, 8, 4), (3, 250, 16, 16), (64, 60, 32, 8)])
def test_chunked_scan_matches_the_sequential_recurrence(shape):
    batch, frames, channels, states = shape
    generator = torch.Generator().manual_seed(sum(shape))
    u = torch.randn(batch, frames, channels, generator=generator)
    delta = torch.nn.functional.softplus(torch.randn(batch, frames, channels, generator=generator))
    A = -torch.rand(channels, states, generator=generator) * 4
    B = torch.randn(batch, frames, states, generator=generator)
    C = torch.randn(batch, frames, states, generator=generator)
    D = torch.randn(channels, generator=generator)
    tensors = [tensor.requires_grad_() for tensor in (u, delta, A, B, C, D)]
    fast, reference = selective_scan(*tensors), selective_scan_reference(*tensors)
    scale = reference.abs().max()
    torch.testing.assert_close(fast / scale, reference / scale, atol=1e-5, rtol=0)
    grad_output = torch.randn(fast.shape, generator=generator)
    fast_grads = torch.autograd.grad(fast, tensors, grad_output)
    reference_grads = torch.autograd.grad(reference, tensors, grad_output)
    for name, got, expected in zip("u delta A B C D".split(), fast_grads, reference_grads):
        scale = expected.abs().max().clamp_min(1.0)  # gradient of A is exactly 0 with a single frame
        torch.testing.assert_close(got / scale, expected / scale, atol=1e-5, rtol=0, msg=f"gradient of {name}")


def test_scan_row_blocks_and_inference_mode_give_the_same_result(monkeypatch):
    import modeling_elegance.selective_scan as scan

    generator = torch.Generator().manual_seed(3)
    u, delta = torch.randn(9, 40, 8, generator=generator), torch.rand(9, 40, 8, generator=generator)
    A, D = -torch.rand(8, 4, generator=generator), torch.randn(8, generator=generator)
    B, C = torch.randn(9, 40, 4, generator=generator), torch.randn(9, 40, 4, generator=generator)
    whole = scan.selective_scan(u, delta, A, B, C, D)
    monkeypatch.setattr(scan, "_CHUNK_ELEMENTS", 16 * 8 * 4 * 2)  # blocks of 2 rows, chunks of 16 frames
    assert len(scan._row_blocks(9, 8, 4)) == 5
    with torch.inference_mode():
        blocked = scan.selective_scan(u, delta, A, B, C, D)
    torch.testing.assert_close(blocked, whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(blocked, scan.selective_scan_reference(u, delta, A, B, C, D), atol=1e-5, rtol=1e-5)


def test_lip_frontend_embeds_long_clips_in_blocks_with_the_same_result():
    from modeling_elegance.lip_frontend import LipFrontend

    torch.manual_seed(0)
    frontend = LipFrontend(width=4, embedding_dim=16).eval()
    clip = torch.randn(2, 23, 24, 24)
    with torch.no_grad():
        whole = frontend(clip)
        frontend.inference_block_frames = 5
        blocked = frontend(clip)
    torch.testing.assert_close(blocked, whole, atol=1e-5, rtol=1e-5)


def test_scan_runs_in_float32_under_bf16_autocast():
    u, delta = torch.randn(2, 20, 8), torch.rand(2, 20, 8)
    A, B, C, D = -torch.rand(8, 4), torch.randn(2, 20, 4), torch.randn(2, 20, 4), torch.randn(8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = selective_scan(u.bfloat16(), delta, A, B, C, D)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), selective_scan_reference(u.bfloat16().float(), delta, A, B, C, D), atol=0.05, rtol=0.02)


# --- training behaviour ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TSE_PRESETS)
def test_gradient_reaches_every_parameter(name):
    model = build(name, prior_embedding_dim=8).train()
    batch = inputs(model)
    output = model(**batch, labels=torch.randn_like(batch["input_values"]), prior_embeds=torch.randn(2, 4, 8))
    output.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_gradient_checkpointing_gives_the_same_gradients():
    model = build("av-mamba-tiny").train()
    batch = inputs(model)
    labels = torch.randn_like(batch["input_values"])

    def gradients():
        model.zero_grad()
        torch.manual_seed(0)
        model(**batch, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = gradients()
    model.activation_checkpointing_enable()
    assert all(block.gradient_checkpointing for block in model.extractor.blocks)
    checkpointed = gradients()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-4, msg=name)


@pytest.mark.parametrize("name", TSE_PRESETS)
def test_bf16_autocast_runs_and_stays_close_to_float32(name):
    model = build(name)
    batch = inputs(model)
    with torch.no_grad():
        reference = model(**batch).waveform
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(**batch).waveform
    assert torch.isfinite(low).all()
    agreement = scale_invariant_sdr(low.float(), reference)
    assert torch.all(agreement > 15), agreement


def test_lstm_runs_in_float32_under_cpu_bf16_autocast():
    from modeling_elegance.sequence_models import BidirectionalLSTM

    lstm = BidirectionalLSTM(64, hidden_size=128)
    x = torch.randn(260, 100, 64, requires_grad=True)  # a usev-base intra-chunk batch; oneDNN's bf16 LSTM rejects it
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = lstm(x)
    y.sum().backward()
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, lstm.lstm(x)[0])


def test_activity_aware_loss_scores_speech_with_sdr_and_silence_with_energy():
    target = torch.zeros(2, 1600)
    target[0] = torch.randn(1600)  # always speaking
    estimate = target + 0.1 * torch.randn(2, 1600)
    # row 0: -SDR only; row 1 (silent target): 0.005 * 10 log10(energy) only
    sdr = 10 * torch.log10(target[0].pow(2).sum() / (target[0] - estimate[0]).pow(2).sum())
    energy = 10 * torch.log10(estimate[1].pow(2).sum())
    expected = (-sdr + 0.005 * energy) / 2
    got = activity_aware_loss(estimate, target, frame_length=320)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)


def test_activity_aware_loss_penalises_output_where_the_target_is_silent():
    target = torch.zeros(1, 3200)
    target[:, :1600] = torch.randn(1, 1600)
    quiet, loud = target.clone(), target.clone()
    quiet[:, 1600:] = 1e-3 * torch.randn(1, 1600)
    loud[:, 1600:] = torch.randn(1, 1600)
    quiet_loss = activity_aware_loss(quiet, target, frame_length=320)
    loud_loss = activity_aware_loss(loud, target, frame_length=320)
    # identical where the target speaks: the difference is the energy penalty alone, 60 dB x 0.005
    torch.testing.assert_close(loud_loss - quiet_loss, torch.tensor(0.3), atol=0.02, rtol=0)


def test_activity_aware_loss_is_selected_by_the_config():
    model = build("usev-se-tiny", loss="activity_aware")
    audio, target = torch.randn(1, 8000), torch.randn(1, 8000)
    output = model(audio, labels=target)
    torch.testing.assert_close(output.loss, activity_aware_loss(output.waveform, target, frame_length=320))


def test_si_sdr_is_scale_invariant_and_matches_a_known_ratio():
    target = torch.randn(1, 16000)
    noise = torch.randn(1, 16000)
    noise = noise - noise.mean() - (noise * (target - target.mean())).sum() / (target - target.mean()).pow(2).sum() * (target - target.mean())
    noise = noise * (target - target.mean()).norm() / noise.norm() / 10  # 20 dB below the target, orthogonal
    estimate = target + noise
    torch.testing.assert_close(scale_invariant_sdr(estimate, target), torch.tensor([20.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(scale_invariant_sdr(3 * estimate, target), scale_invariant_sdr(estimate, target))


# --- the linguistic prior hook --------------------------------------------------------------------------------------


def test_prior_fusion_exists_only_when_enabled():
    without = build("usev-tiny")
    assert without.extractor.prior_fusion is None
    assert not any("prior_fusion" in name for name, _ in without.named_parameters())
    with_prior = build("usev-tiny", prior_embedding_dim=16)
    assert any("prior_fusion" in name for name, _ in with_prior.named_parameters())
    assert with_prior.extractor.prior_fusion.prior_dim == 16


def test_zeros_stand_in_for_a_missing_prior_and_a_prior_changes_the_output():
    model = build("usev-tiny", prior_embedding_dim=16)
    batch = inputs(model)
    with torch.no_grad():
        missing = model(**batch).waveform
        zeros = model(**batch, prior_embeds=torch.zeros(2, 1, 16)).waveform
        prior = model(**batch, prior_embeds=torch.randn(2, 6, 16)).waveform
    assert torch.equal(missing, zeros)
    assert not torch.allclose(missing, prior)


# --- input errors ---------------------------------------------------------------------------------------------------


def test_errors_name_the_problem_and_the_fix():
    model = build("usev-tiny")
    good = inputs(model)
    cases = [
        (dict(good, input_values=good["input_values"][0]), r"input_values has shape \(9600,\); expected \(batch, samples\) of mono audio at 16000 Hz"),
        (dict(good, input_values=good["input_values"][:, None]), r"input_values has shape \(2, 1, 9600\); expected \(batch, samples\)"),
        (dict(good, sampling_rate=44100), r"audio is 44100 Hz, the model expects 16000 Hz; resample it first"),
        ({"input_values": good["input_values"]}, r"takes exactly one lip input, got neither lip_frames nor lip_embeds"),
        (dict(good, lip_embeds=torch.randn(2, 15, 64)), r"takes exactly one lip input, got both lip_frames and lip_embeds"),
        (dict(good, lip_frames=torch.randn(2, 15, 32, 32)), r"lip_frames has shape \(2, 15, 32, 32\); expected \(batch=2, frames, 48, 48\)"),
        (dict(good, lip_frames=torch.randn(2, 15, 1, 48, 48)), r"with a channel axis; pass grayscale clips as \(batch, frames, 48, 48\)"),
        (dict(good, lip_frames=torch.randn(2, 40, 48, 48)), r"row 0: the lip video lasts 1.60 s \(40 frames at 25 fps\) but the audio lasts 0.60 s \(9600 samples at 16000 Hz\)"),
        (dict(good, labels=torch.randn(2, 100)), r"labels have shape \(2, 100\) but input_values \(2, 9600\)"),
        (dict(good, prior_embeds=torch.randn(2, 3, 8)), r"prior_embeds were given but this model has no linguistic prior fusion"),
        ({"input_values": torch.randn(2, 50), "lip_frames": torch.randn(2, 1, 48, 48)},
         r"^input_values has 50 samples, fewer than one encoder window of 80 samples \(5 ms at 16000 Hz\); pass at least 80 samples$"),
    ]
    for arguments, message in cases:
        with pytest.raises(ValueError, match=message):
            model(**arguments)


def test_modality_errors_of_embedding_and_audio_only_models():
    embeddings = build("usev-tiny", lip_input="embeddings")
    batch = inputs(build("usev-tiny"))
    with pytest.raises(ValueError, match=r"built for precomputed lip embeddings \(lip_input='embeddings'\) and has no lip front-end"):
        embeddings(**batch)
    with pytest.raises(ValueError, match=r"lip_embeds has shape \(2, 15, 32\); expected \(batch=2, frames, 64\)"):
        embeddings(batch["input_values"], lip_embeds=torch.randn(2, 15, 32))
    enhancement = build("usev-se-tiny")
    with pytest.raises(ValueError, match=r"UsevForSpeechEnhancement is audio-only and takes no lip_frames or lip_embeds"):
        enhancement(**batch)
    with pytest.raises(ValueError, match=r"needs a lip input; set lip_input='frames' or 'embeddings'"):
        UsevForTargetSpeechExtraction(preset_config("usev-tiny", lip_input=None))
    prior_model = build("usev-tiny", prior_embedding_dim=8)
    with pytest.raises(ValueError, match=r"prior_embeds has shape \(2, 3, 4\); expected \(batch=2, tokens, 8\)"):
        prior_model(**batch, prior_embeds=torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"prior_attention_mask marks no token as real in row\(s\) \[1\]"):
        prior_model(**batch, prior_embeds=torch.randn(2, 3, 8), prior_attention_mask=torch.tensor([[1, 1, 0], [0, 0, 0]]))


def test_se_models_are_audio_only():
    for model_class in (UsevForSpeechEnhancement, AVMambaForSpeechEnhancement):
        name = "usev-se-tiny" if model_class is UsevForSpeechEnhancement else "av-mamba-se-tiny"
        model = model_class(preset_config(name))
        assert model.config.lip_input is None
        assert not hasattr(model, "visual_encoder") and model.extractor.cue_fusion is None


# --- with the processor and the corpus ------------------------------------------------------------------------------


def test_processor_output_feeds_the_model_and_a_few_steps_reduce_the_loss(tiny_corpus):
    from processing import EleganceProcessor

    rows = tiny_corpus["train"].select(range(2))
    roi = int(rows[0]["lips"].shape[-1])
    processor = EleganceProcessor.from_defaults(lip_roi_size=roi)
    model = build("usev-tiny", lip_roi_size=roi).train()
    batch = processor(audio=list(rows["mixture"]), videos=list(rows["lips"]), return_tensors="pt")
    labels = processor(audio=list(rows["target"]), return_tensors="pt")["input_values"]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0, losses
