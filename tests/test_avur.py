"""AVUR-LLM's first stage on a tiny random Whisper: a closed gate is Whisper exactly, the alignment never sends
gradient to the audio encoder, the N-best, modality dropout, the acoustic reliability, save/load and remote code,
and clear errors."""

from __future__ import annotations

import json
import os
import shutil
import textwrap

import numpy as np
import pytest
import torch
from conftest import run_without_the_package
from safetensors.torch import load_file
from transformers import AutoModel, GenerationMixin, WhisperForConditionalGeneration

from modeling_elegance import AvurConfig, AvurForConditionalGeneration
from modeling_elegance.modeling_avur import AdaptiveModulatedFusion, SparseAlignmentBlock
from modeling_elegance.visual_units import VisualUnitQuantizer

VISUAL_DIM = 8
NBEST = dict(num_beams=3, num_return_sequences=3, output_scores=True, return_dict_in_generate=True, max_new_tokens=4)


@pytest.fixture(scope="module")
def whisper(random_whisper):
    return WhisperForConditionalGeneration.from_pretrained(random_whisper).eval()


@pytest.fixture()
def model(random_whisper):
    return AvurForConditionalGeneration.from_whisper(random_whisper, visual_dim=VISUAL_DIM).eval()


def inputs(batch=2, frames=75, seed=0):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, 80, 3000, generator=generator)
    visual = torch.randn(batch, frames, VISUAL_DIM, generator=generator)
    return features, visual


def decoder_ids(whisper, batch=2):
    return torch.tensor([[whisper.config.decoder_start_token_id, 200, 300, 400]] * batch)


def open_gate(model):
    with torch.no_grad():
        model.fusion.gate.fill_(2.0)


def test_a_closed_gate_is_whisper_exactly(model, whisper):
    features, visual = inputs()
    with torch.no_grad():
        ours = model(features, visual, decoder_input_ids=decoder_ids(whisper))
        theirs = whisper(input_features=features, decoder_input_ids=decoder_ids(whisper))
    assert torch.equal(ours.logits, theirs.logits)
    assert ours.acoustic_reliability.shape == (2, 4) and ours.visual_hidden_states.shape == (2, 75, 16)
    prefix = torch.tensor([model.transcript_prefix()] * 2)
    stock_nbest = GenerationMixin.generate(whisper, features, decoder_input_ids=prefix, **NBEST)
    assert torch.equal(model.generate(features, visual, **NBEST).sequences, stock_nbest.sequences)
    greedy = dict(max_new_tokens=4)
    assert torch.equal(model.generate(features, visual, **greedy), whisper.generate(features, **greedy))


def test_the_n_best_is_n_different_hypotheses_best_first_starting_with_whispers_own_beam(model, whisper):
    """Whisper's own generate returns N copies of its best hypothesis for num_return_sequences=N (it beam-searches
    N copies of the input); the N-best must be N different hypotheses, scores falling, the first the beam's own."""
    from transformers import WhisperTokenizerFast

    features, _ = inputs(seed=3)
    options = dict(num_beams=4, output_scores=True, return_dict_in_generate=True, max_new_tokens=12)
    nbest = model.generate(features, None, num_return_sequences=4, **options)
    prefix = model.transcript_prefix()
    assert prefix[0] == whisper.config.decoder_start_token_id  # (this tiny Whisper has no <|notimestamps|>)
    assert nbest.sequences.shape[0] == 8 and torch.all(nbest.sequences[:, : len(prefix)] == torch.tensor(prefix))
    for row in range(2):
        hypotheses = nbest.sequences[4 * row : 4 * (row + 1)]
        assert len({tuple(hypothesis.tolist()) for hypothesis in hypotheses}) == 4
        scores = nbest.sequences_scores[4 * row : 4 * (row + 1)]
        assert torch.all(scores[:-1] >= scores[1:])
    tokenizer = WhisperTokenizerFast.from_pretrained(whisper.name_or_path)
    own = tokenizer.batch_decode(whisper.generate(features, **options).sequences, skip_special_tokens=True)
    firsts = tokenizer.batch_decode(nbest.sequences[::4], skip_special_tokens=True)
    assert firsts == own


def test_a_saved_recogniser_decodes_with_its_whispers_generation_settings(random_whisper, tmp_path):
    """Whisper's suppressed tokens and <|notimestamps|> live in its generation config, which a saved recogniser used
    to lose (its Whisper's generation settings were rebuilt from the model config on loading)."""
    whisper = WhisperForConditionalGeneration.from_pretrained(random_whisper)
    whisper.generation_config.no_timestamps_token_id = 50362
    whisper.generation_config.suppress_tokens = [1, 2, 7]
    whisper.generation_config._from_model_config = False
    whisper.save_pretrained(tmp_path / "whisper")
    model = AvurForConditionalGeneration.from_whisper(str(tmp_path / "whisper"), visual_dim=VISUAL_DIM)
    model.save_pretrained(tmp_path / "avsr")
    loaded = AutoModel.from_pretrained(tmp_path / "avsr")
    settings = loaded.whisper.generation_config
    assert settings.no_timestamps_token_id == 50362 and settings.suppress_tokens == [1, 2, 7]
    assert loaded.transcript_prefix() == [whisper.config.decoder_start_token_id, 50362]
    features, visual = inputs()
    greedy = dict(max_new_tokens=4)
    assert torch.equal(loaded.generate(features, visual, **greedy), whisper.eval().generate(features, **greedy))


def test_a_multilingual_whispers_transcript_prefix_names_its_language_and_task(model):
    generation = model.whisper.generation_config
    generation.is_multilingual = True
    generation.lang_to_id, generation.task_to_id = {"<|en|>": 50259, "<|de|>": 50261}, {"transcribe": 50360}
    generation.no_timestamps_token_id = 50364
    start = generation.decoder_start_token_id
    assert model.transcript_prefix() == [start, 50259, 50360, 50364]
    assert model.transcript_prefix("de") == [start, 50261, 50360, 50364]
    with pytest.raises(ValueError, match=r"^language='xx' or task='transcribe' is unknown to this Whisper"):
        model.transcript_prefix("xx")


def test_beam_search_leaves_the_cross_attention_cache_in_place_and_decodes_the_same(model, monkeypatch):
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    from modeling_elegance.beam_search_cache import BeamSharedCrossAttentionCache

    features, visual = inputs(batch=3, seed=1)
    open_gate(model)
    nbest = {**NBEST, "max_new_tokens": 8}
    stock = model.generate(features, visual, cache=EncoderDecoderCache(DynamicCache(), DynamicCache()), **nbest)
    reorders = []
    original = BeamSharedCrossAttentionCache.reorder_cache
    monkeypatch.setattr(
        BeamSharedCrossAttentionCache, "reorder_cache", lambda self, idx: reorders.append(idx) or original(self, idx)
    )
    ours = model.generate(features, visual, **nbest)  # the default for beam search
    assert len(reorders) > 0  # it was the cache in use
    assert any(not torch.equal(idx, torch.arange(9)) for idx in reorders)  # and beams did swap histories
    assert torch.equal(ours.sequences, stock.sequences)
    assert torch.equal(ours.sequences_scores, stock.sequences_scores)


def test_the_n_best_comes_with_scores_and_the_visual_stream_changes_it(model):
    features, visual = inputs()
    closed = model.generate(features, visual, **NBEST)
    open_gate(model)
    opened = model.generate(features, visual, **NBEST)
    assert opened.sequences.shape[0] == 6 and opened.sequences_scores.shape == (6,)  # 3 hypotheses per clip
    assert not torch.allclose(opened.sequences_scores, closed.sequences_scores)
    audio_only = model.generate(features, None, **NBEST)  # no visual stream: Whisper again, whatever the gate
    assert torch.equal(audio_only.sequences_scores, closed.sequences_scores)


def test_the_open_gate_loss_trains_the_visual_read_while_the_gate_is_closed(random_whisper, whisper):
    features, visual = inputs()
    labels = torch.tensor([[200, 300, 400, whisper.config.eos_token_id]] * 2)
    grads = {}
    for weight in (0.0, 0.5):
        model = AvurForConditionalGeneration.from_whisper(
            random_whisper, visual_dim=VISUAL_DIM, fusion_auxiliary_weight=weight
        ).train()
        torch.manual_seed(0)  # the same modality dropout draw (none: its default is 0)
        output = model(features, visual, labels=labels)
        output.loss.backward()
        grads[weight] = model.fusion.visual_read.out_proj.weight.grad
        if weight == 0.0:
            assert output.auxiliary_loss is None
            plain = output.loss.detach()
        else:
            assert torch.allclose(output.loss, plain + weight * output.auxiliary_loss)
            assert output.auxiliary_loss > 0
    assert grads[0.0] is None or not grads[0.0].any()  # tanh(0) = 0: the read learns nothing through the gate
    assert grads[0.5].abs().sum() > 0
    model.eval()  # inference: no open-gate branch, and the output is Whisper's (the gate is still closed)
    with torch.no_grad():
        ours = model(features, visual, decoder_input_ids=decoder_ids(whisper))
        theirs = whisper(input_features=features, decoder_input_ids=decoder_ids(whisper))
    assert ours.auxiliary_loss is None and torch.equal(ours.logits, theirs.logits)
    with pytest.raises(ValueError, match="fusion_auxiliary_weight must be >= 0, got -1"):
        AvurConfig(whisper_config=whisper.config.to_dict(), fusion_auxiliary_weight=-1)


def test_the_alignment_output_norm_bounds_what_the_audio_adds():
    """`sma_output_norm`: the read of the audio is normalised before it joins the visual stream, so audio of any
    scale adds about as much (the attention's weights still sharpen with the scale; without the norm, the addition
    grows with the audio)."""
    torch.manual_seed(0)
    audio, visual = torch.randn(2, 50, 16), torch.randn(2, 10, 16)
    for output_norm in (False, True):
        block = SparseAlignmentBlock(16, 4, 32, output_norm=output_norm).eval()
        with torch.no_grad():
            added = {scale: (block(visual, scale * audio) - visual).norm() for scale in (1.0, 1000.0)}
        if output_norm:
            assert added[1000.0] < 1.5 * added[1.0]  # each addition is a LayerNorm's output: sqrt(d) a frame
        else:
            assert added[1000.0] > 100 * added[1.0]


def test_without_alignment_blocks_the_fusion_reads_the_projected_visual_stream(random_whisper, whisper):
    """``sma_layers=[]``: no alignment block, so the visual stream the fusion reads is the projection of the visual
    features at Whisper's positions, whatever the audio; the closed gate is still Whisper, and the cached states are
    the encoder's output alone."""
    model = AvurForConditionalGeneration.from_whisper(random_whisper, visual_dim=VISUAL_DIM, sma_layers=[]).eval()
    assert len(model.alignment) == 0
    features, visual = inputs()
    ids = decoder_ids(whisper)
    with torch.no_grad():
        closed = model(features, visual, decoder_input_ids=ids)
        assert torch.equal(closed.logits, whisper(input_features=features, decoder_input_ids=ids).logits)
        assert torch.equal(closed.visual_hidden_states, model.visual_stream(visual))
        other_audio = model(torch.randn_like(features), visual, decoder_input_ids=ids)
        assert torch.equal(other_audio.visual_hidden_states, closed.visual_hidden_states)
        open_gate(model)
        opened = model(features, visual, decoder_input_ids=ids)
        states = model.encode_audio(features)
        assert states.shape == (2, 1, 1500, 16)
        cached = model(visual_embeds=visual, audio_states=states, decoder_input_ids=ids)
    assert not torch.allclose(opened.logits, closed.logits)
    assert torch.equal(cached.logits, opened.logits)


def test_alignment_never_sends_gradient_to_the_audio(model, whisper):
    audio = torch.randn(2, 50, 16, requires_grad=True)
    visual = torch.randn(2, 10, 16, requires_grad=True)
    SparseAlignmentBlock(16, 4, 32)(visual, audio).sum().backward()
    assert audio.grad is None and visual.grad.abs().sum() > 0

    # in the model: the visual stream's gradient reaches the alignment blocks, not one Whisper encoder weight
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    features, visual = inputs()
    model(features, visual, decoder_input_ids=decoder_ids(whisper)).visual_hidden_states.pow(2).sum().backward()
    assert all(p.grad is None for p in model.whisper.model.encoder.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.alignment.parameters())


def test_modality_dropout_leaves_dropped_examples_audio_only(random_whisper, whisper):
    model = AvurForConditionalGeneration.from_whisper(random_whisper, visual_dim=VISUAL_DIM, modality_dropout=0.5)
    open_gate(model)
    model.train()
    model.whisper.eval()  # no dropout inside Whisper, so the comparison is exact
    features, visual = inputs(batch=8)
    torch.manual_seed(3)
    with torch.no_grad():
        ours = model(features, visual, decoder_input_ids=decoder_ids(whisper, 8)).logits
        theirs = whisper(input_features=features, decoder_input_ids=decoder_ids(whisper, 8)).logits
    same = [torch.equal(ours[i], theirs[i]) for i in range(8)]
    assert any(same) and not all(same)


def test_without_modulation_the_gate_alone_scales_the_visual_read():
    """The ablation "SMA only" (fusion_modulation="none") injects tanh(gate) * read; AMF scales that by 1 - reliability."""
    torch.manual_seed(0)
    amf = AdaptiveModulatedFusion(16, 4, 4)
    plain = AdaptiveModulatedFusion(16, 4, 4, modulated=False)
    plain.load_state_dict(amf.state_dict())
    with torch.no_grad():
        amf.gate.fill_(1.0), plain.gate.fill_(1.0)
    hidden, audio, visual = torch.randn(2, 5, 16), torch.randn(2, 30, 16), torch.randn(2, 10, 16)
    with torch.no_grad():
        modulated, reliability, _ = amf(hidden, audio, visual)
        unmodulated, same_reliability, _ = plain(hidden, audio, visual)
    torch.testing.assert_close(modulated - hidden, (1 - reliability)[..., None] * (unmodulated - hidden))
    assert torch.equal(reliability, same_reliability) and not torch.allclose(modulated, unmodulated)
    with pytest.raises(ValueError, match=r"^fusion_modulation must be 'reliability' \(AMF\) or 'none', got 'gate'$"):
        AvurConfig(fusion_modulation="gate")


def test_the_aligned_read_takes_the_lips_where_the_probe_listens():
    """fusion_read="aligned": a token's visual read is the probe's attention over the audio frames (mean over heads)
    applied to the visual stream at those instants (audio frame j <- video frame j // 2), then a linear map."""
    torch.manual_seed(0)
    fusion = AdaptiveModulatedFusion(16, 4, 4, aligned_read=True)
    with torch.no_grad():
        fusion.gate.fill_(1.0)
    hidden, audio, visual = torch.randn(2, 5, 16), torch.randn(2, 30, 16), torch.randn(2, 12, 16)
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 20:] = False
    with torch.no_grad():
        fused, reliability, _ = fusion(hidden, audio, visual, audio_mask=mask)
        weights, unreliability = fusion.probe_attention(hidden, audio, mask)
        memory = fusion.visual_norm(visual)
        at_audio = torch.stack([memory[:, j // 2] if j // 2 < 12 else torch.zeros(2, 16) for j in range(30)], dim=1)
        expected = hidden + torch.tanh(fusion.gate) * unreliability[..., None] * fusion.visual_value(
            weights.mean(1) @ at_audio
        )
    torch.testing.assert_close(fused, expected)
    torch.testing.assert_close(reliability, 1 - unreliability)
    assert weights[1, :, :, 20:].abs().max() == 0  # frames outside the clip are never read
    # nor projected: frames past every clip's end change nothing, whatever they hold
    longer = torch.cat([audio, torch.randn(2, 10, 16)], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(2, 10, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        assert torch.equal(fusion(hidden, longer, visual, audio_mask=longer_mask)[0], fused)
    with pytest.raises(ValueError, match=r"^fusion_read must be 'attention' or 'aligned', got 'x'$"):
        AvurConfig(fusion_read="x")


def test_an_aligned_read_model_starts_as_whisper(random_whisper, whisper):
    model = AvurForConditionalGeneration.from_whisper(random_whisper, visual_dim=VISUAL_DIM, fusion_read="aligned")
    features, visual = inputs()
    with torch.no_grad():
        ours = model.eval()(features, visual, decoder_input_ids=decoder_ids(whisper)).logits
        theirs = whisper(input_features=features, decoder_input_ids=decoder_ids(whisper)).logits
        assert torch.equal(ours, theirs)
        open_gate(model)
        assert not torch.allclose(model(features, visual, decoder_input_ids=decoder_ids(whisper)).logits, theirs)


def test_decoder_lora_leaves_the_encoder_alone_and_merges_into_plain_whisper(random_whisper, whisper):
    from peft.tuners.tuners_utils import BaseTunerLayer

    from training.whisper_lora import add_decoder_lora, merge_lora

    adapted = WhisperForConditionalGeneration.from_pretrained(random_whisper).eval()
    names = add_decoder_lora(adapted, rank=2)
    assert names and all(".decoder." in name for name in names)  # the encoder's states stay cacheable
    assert {n for n, p in adapted.named_parameters() if p.requires_grad} == set(names)
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_B" in name:  # peft starts B at zero: make the adapters do something
                parameter.normal_(0, 0.5)
    features, _ = inputs()
    ids = decoder_ids(whisper)
    with torch.no_grad():
        before = adapted(input_features=features, decoder_input_ids=ids).logits
        assert not torch.allclose(before, whisper(input_features=features, decoder_input_ids=ids).logits)
        assert merge_lora(adapted) == 10 * whisper.config.decoder_layers  # 2 x 4 attention projections, fc1, fc2
        merged = adapted(input_features=features, decoder_input_ids=ids).logits
    torch.testing.assert_close(merged, before, atol=1e-5, rtol=1e-5)
    assert not any(isinstance(module, BaseTunerLayer) for module in adapted.modules())
    assert set(adapted.state_dict()) == set(whisper.state_dict())
    with pytest.raises(ValueError, match=r"^the LoRA rank must be at least 1, got 0$"):
        add_decoder_lora(adapted, rank=0)


def test_acoustic_reliability_counts_only_the_clip_frames(model, whisper):
    features, visual = inputs()
    mask = torch.zeros(2, 3000, dtype=torch.long)
    mask[:, :300] = 1  # 3 s of a 30-s window
    with torch.no_grad():
        whole = model(features, visual, decoder_input_ids=decoder_ids(whisper)).acoustic_reliability
        clip = model(features, visual, attention_mask=mask, decoder_input_ids=decoder_ids(whisper)).acoustic_reliability
    assert ((0 <= whole) & (whole <= 1)).all() and ((0 <= clip) & (clip <= 1)).all()
    assert not torch.allclose(whole, clip)
    assert AvurForConditionalGeneration.audio_frame_mask(mask).sum(-1).tolist() == [150, 150]


def test_the_untrained_probe_is_whispers_last_cross_attention(random_whisper):
    """At the start the reliability is 1 - the normalised entropy of Whisper's own last cross-attention, averaged
    over heads: the probe reads that attention's input with its weights."""
    model = AvurForConditionalGeneration.from_whisper(random_whisper, visual_dim=VISUAL_DIM).eval()
    eager = WhisperForConditionalGeneration.from_pretrained(random_whisper, attn_implementation="eager").eval()
    features, visual = inputs()
    ids = decoder_ids(eager)
    with torch.no_grad():
        reliability = model(features, visual, decoder_input_ids=ids).acoustic_reliability
        attention = eager(features, decoder_input_ids=ids, output_attentions=True).cross_attentions[-1]
    entropy = -(attention * attention.clamp_min(1e-30).log()).sum(-1).mean(1)  # (batch, tokens)
    expected = 1 - entropy / np.log(attention.shape[-1])
    torch.testing.assert_close(reliability, expected, atol=1e-5, rtol=1e-4)


def test_fusion_after_an_earlier_decoder_layer(random_whisper, whisper):
    """`fusion_layer=0`: closed, the model is Whisper exactly; the probe starts as layer 0's cross-attention; open,
    the later layers carry the injection to the logits; the open-gate loss runs the opened state through the later
    layers and trains the read while the gate is closed."""
    model = AvurForConditionalGeneration.from_whisper(random_whisper, visual_dim=VISUAL_DIM, fusion_layer=0).eval()
    eager = WhisperForConditionalGeneration.from_pretrained(random_whisper, attn_implementation="eager").eval()
    features, visual = inputs()
    ids = decoder_ids(whisper)
    with torch.no_grad():
        closed = model(features, visual, decoder_input_ids=ids)
        attention = eager(features, decoder_input_ids=ids, output_attentions=True).cross_attentions[0]
    assert torch.equal(closed.logits, whisper(input_features=features, decoder_input_ids=ids).logits)
    entropy = -(attention * attention.clamp_min(1e-30).log()).sum(-1).mean(1)
    torch.testing.assert_close(
        closed.acoustic_reliability, 1 - entropy / np.log(attention.shape[-1]), atol=1e-5, rtol=1e-4
    )
    open_gate(model)
    with torch.no_grad():
        opened = model(features, visual, decoder_input_ids=ids).logits
        other = model(features, visual.roll(1, 0), decoder_input_ids=ids).logits
    assert not torch.allclose(opened, closed.logits) and not torch.allclose(opened, other)
    assert model.generate(features, visual, **NBEST).sequences.shape[0] == 6  # beams and cache through the hook

    model = AvurForConditionalGeneration.from_whisper(
        random_whisper, visual_dim=VISUAL_DIM, fusion_layer=0, fusion_auxiliary_weight=1.0
    ).train()
    labels = torch.tensor([[200, 300, 400, whisper.config.eos_token_id]] * 2)
    output = model(features, visual, labels=labels)
    output.loss.backward()
    assert output.auxiliary_loss > 0 and model.fusion.visual_read.out_proj.weight.grad.abs().sum() > 0
    with pytest.raises(
        ValueError,
        match=r"^fusion_layer must be None \(after the decoder\) or one of the decoder's layers 0\.\.1, got 2$",
    ):
        AvurConfig(whisper_config=whisper.config.to_dict(), fusion_layer=2)


def test_acoustic_reliability_falls_when_noise_is_added(tiny_corpus):
    """The real offline Whisper (tiny.en), untrained AMF: on clean test targets, then the same in white noise at 0
    and -5 dB SNR, the mean reliability falls at each step, and at -5 dB it is below clean on every clip."""
    from transformers import WhisperProcessor

    from training.offline_whisper import offline_whisper

    folder = offline_whisper()
    model = AvurForConditionalGeneration.from_whisper(folder, visual_dim=VISUAL_DIM).eval()
    processor = WhisperProcessor.from_pretrained(folder)
    generator = np.random.default_rng(0)
    reliabilities = {}  # snr -> per-clip mean reliability
    for example in tiny_corpus["test"].select(range(4)):
        target = example["target"].astype(np.float32)
        tokens = processor.tokenizer(" " + example["transcript"], add_special_tokens=False).input_ids
        ids = torch.tensor([[model.whisper.generation_config.decoder_start_token_id, 50362, *tokens]])
        noise = generator.standard_normal(len(target)).astype(np.float32)
        for snr in (None, 0, -5):
            audio = target if snr is None else target + noise * np.sqrt((target**2).mean() / 10 ** (snr / 10))
            features = processor.feature_extractor(
                audio, sampling_rate=16000, return_tensors="pt", return_attention_mask=True
            )
            with torch.no_grad():
                output = model(
                    features.input_features,
                    torch.zeros(1, 25, VISUAL_DIM),
                    attention_mask=features.attention_mask,
                    decoder_input_ids=ids,
                )
            reliabilities.setdefault(snr, []).append(output.acoustic_reliability.mean().item())
    means = {snr: np.mean(values) for snr, values in reliabilities.items()}
    assert means[None] > means[0] > means[-5], means
    assert all(clean > noisy for clean, noisy in zip(reliabilities[None], reliabilities[-5])), reliabilities


def test_save_load_round_trip_and_auto_model(model, whisper, tmp_path):
    open_gate(model)
    features, visual = inputs()
    with torch.no_grad():
        before = model(features, visual, decoder_input_ids=decoder_ids(whisper)).logits
    model.save_pretrained(tmp_path / "avur")
    reloaded = AutoModel.from_pretrained(tmp_path / "avur").eval()
    assert isinstance(reloaded, AvurForConditionalGeneration) and reloaded.config.sma_layers == [1]
    with torch.no_grad():
        after = reloaded(features, visual, decoder_input_ids=decoder_ids(whisper)).logits
    assert torch.equal(before, after)


def test_trust_remote_code_loads_without_the_package(model, whisper, tmp_path):
    open_gate(model)
    features, visual = inputs()
    with torch.no_grad():
        expected = model(features, visual, decoder_input_ids=decoder_ids(whisper)).logits
    folder = tmp_path / "avur"
    model.save_pretrained(folder)
    assert (folder / "modeling_avur.py").exists() and (folder / "configuration_avur.py").exists()
    torch.save(
        {"features": features, "visual": visual, "ids": decoder_ids(whisper), "expected": expected}, tmp_path / "io.pt"
    )
    script = textwrap.dedent(
        f"""
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        io = torch.load({str(tmp_path / "io.pt")!r})
        with torch.no_grad():
            logits = model(io["features"], io["visual"], decoder_input_ids=io["ids"]).logits
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        assert torch.equal(logits, io["expected"]), (logits - io["expected"]).abs().max()
        print("remote code ok", type(model).__name__)
        """
    )
    result = run_without_the_package(script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "remote code ok AvurForConditionalGeneration" in result.stdout


def test_clear_errors(model):
    features, _ = inputs()
    with pytest.raises(ValueError, match=r"^visual_embeds has shape \(2, 75, 5\); expected \(batch, frames, 8\)"):
        model(features, torch.zeros(2, 75, 5))
    with pytest.raises(
        ValueError, match=r"^visual_embeds has 800 frames; Whisper's window holds 750 frames at 25 fps$"
    ):
        model(features, torch.zeros(2, 800, VISUAL_DIM))
    with pytest.raises(
        ValueError,
        match=r"^sma_layers must name Whisper encoder layers 0\.\.3 \(or be \[\] for no alignment block\), got \[4\]$",
    ):
        AvurConfig(whisper_config={"encoder_layers": 4}, sma_layers=[4])
    with pytest.raises(ValueError, match=r"^sma_num_heads \(5\) must divide Whisper's d_model \(64\)$"):
        AvurConfig(whisper_config={"d_model": 64}, sma_num_heads=5)


def test_a_model_built_on_the_lip_reader_reads_mouth_clips(random_whisper, whisper):
    from modeling_elegance import LipReadingModel

    reader_folder = os.path.join(os.path.dirname(os.path.dirname(__file__)), "pretrained", "lip-reader")
    reader = LipReadingModel.from_pretrained(reader_folder).eval()
    model = AvurForConditionalGeneration.from_whisper(random_whisper, lip_reader=reader_folder).eval()
    assert model.config.lip_input == "frames" and model.config.visual_dim == reader.config.lip_embedding_dim
    for name, tensor in model.lip_encoder.state_dict().items():
        assert torch.equal(tensor, reader.encoder.state_dict()[name]), name
    open_gate(model)
    size = reader.config.lip_roi_size
    lips = torch.randn(2, 75, size, size)
    mask = torch.ones(2, 75, dtype=torch.long)
    mask[1, 60:] = 0
    features, _ = inputs()
    with torch.no_grad():
        embeddings = reader(lips, video_attention_mask=mask).embeddings
        from_frames = model(
            features, lip_frames=lips, video_attention_mask=mask, decoder_input_ids=decoder_ids(whisper)
        )
        from_embeddings = model(features, embeddings, decoder_input_ids=decoder_ids(whisper))
    torch.testing.assert_close(from_frames.logits, from_embeddings.logits, atol=1e-5, rtol=1e-5)
    with pytest.raises(
        ValueError, match=r"^lip_frames has shape \(2, 75, 32, 32\); expected \(batch, frames, 48, 48\)"
    ):
        model(features, lip_frames=torch.zeros(2, 75, 32, 32))
    embeddings_model = AvurForConditionalGeneration.from_whisper(random_whisper, visual_dim=VISUAL_DIM)
    with pytest.raises(ValueError, match=r"^this model takes visual_embeds \(lip_input='embeddings'\), not lip_frames"):
        embeddings_model(features, lip_frames=lips)


def test_cached_whisper_states_give_the_loss_of_the_audio(random_whisper, processor, tiny_corpus, tmp_path):
    from training.whisper_state_cache import WhisperStateCache

    model = AvurForConditionalGeneration.from_whisper(random_whisper, visual_dim=VISUAL_DIM).eval()
    open_gate(model)
    clips = [tiny_corpus["test"][index]["target"] for index in range(3)]
    cache = WhisperStateCache(model, processor.feature_extractor, str(tmp_path))
    states = cache(clips)
    assert (cache.hits, cache.misses) == (0, 3) and len(list(os.scandir(cache.folder))) == 3
    assert torch.equal(cache(clips), states) and (cache.hits, cache.misses) == (3, 3)
    features = processor.feature_extractor(clips, sampling_rate=16000, return_tensors="pt").input_features
    _, visual = inputs(batch=3)
    ids = decoder_ids(model.whisper, batch=3)
    with torch.no_grad():
        direct = model(features, visual, decoder_input_ids=ids, labels=ids)
        cached = model(visual_embeds=visual, audio_states=states, decoder_input_ids=ids, labels=ids)
        exact = model(
            visual_embeds=visual, audio_states=model.encode_audio(features), decoder_input_ids=ids, labels=ids
        )
    assert torch.equal(exact.logits, direct.logits)  # the states themselves are exact; the cache rounds to float16
    torch.testing.assert_close(cached.loss, direct.loss, rtol=1e-3, atol=1e-3)
    other = AvurForConditionalGeneration.from_whisper(random_whisper, visual_dim=VISUAL_DIM, sma_layers=[0])
    assert WhisperStateCache(other, processor.feature_extractor, str(tmp_path)).folder != cache.folder
    with pytest.raises(ValueError, match=r"^pass exactly one of input_features .* and audio_states"):
        model(features, visual, audio_states=states, decoder_input_ids=ids)
    with pytest.raises(ValueError, match=r"^audio_states has shape \(3, 1500, 16\); expected \(batch, 2, frames"):
        model(visual_embeds=visual, audio_states=states[:, 0], decoder_input_ids=ids)

    # decoding from float32 states (the evaluation's cache) is decoding from the audio, beams and N-best included
    exact_cache = WhisperStateCache(model, processor.feature_extractor, str(tmp_path), dtype=torch.float32)
    assert exact_cache.folder != cache.folder and exact_cache(clips).dtype == torch.float32
    from_audio = model.generate(features, visual, **NBEST)
    from_states = model.generate(visual_embeds=visual, audio_states=exact_cache(clips), **NBEST)
    assert torch.equal(from_states.sequences, from_audio.sequences)
    torch.testing.assert_close(from_states.sequences_scores, from_audio.sequences_scores, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"^pass exactly one of input_features .* and audio_states"):
        model.generate(visual_embeds=visual)
    with pytest.raises(ValueError, match=r"^the cached states are stored in torch.float16 or torch.float32, not"):
        WhisperStateCache(model, processor.feature_extractor, str(tmp_path), dtype=torch.bfloat16)


# --- the processor ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def processor(random_whisper):
    from processing import AvurProcessor

    return AvurProcessor.from_whisper(random_whisper, lip_roi_size=32)


def test_the_processor_prepares_whispers_features_lips_and_labels(processor, random_whisper, tiny_corpus, tmp_path):
    from transformers import AutoProcessor, WhisperFeatureExtractor

    examples = [tiny_corpus["test"][0], tiny_corpus["test"][1]]
    batch = processor(
        audio=[e["target"] for e in examples],
        videos=[e["lips"] for e in examples],
        text=[e["transcript"] for e in examples],
        return_tensors="pt",
    )
    expected = WhisperFeatureExtractor()([examples[0]["target"]], sampling_rate=16000, return_tensors="pt")
    torch.testing.assert_close(batch["input_features"][:1], expected.input_features)
    assert batch["attention_mask"].shape == (2, 3000) and int(batch["attention_mask"][0].sum()) == 300
    assert batch["lip_frames"].shape == (2, 75, 32, 32) and batch["video_attention_mask"].shape == (2, 75)
    ids = batch["labels"].masked_fill(batch["labels"] == -100, 0)
    decoded = processor.batch_decode(ids)
    assert decoded[0].startswith(examples[0]["transcript"][:10])
    # the transformers spelling of the default gives the same; skip_special_tokens=False keeps the end token
    assert processor.batch_decode(ids, skip_special_tokens=True) == decoded
    assert "<|endoftext|>" in processor.batch_decode(ids, skip_special_tokens=False)[0]
    processor.save_pretrained(tmp_path / "processor")
    reloaded = AutoProcessor.from_pretrained(tmp_path / "processor")
    assert type(reloaded).__name__ == "AvurProcessor"
    again = reloaded(audio=[e["target"] for e in examples], videos=[e["lips"] for e in examples], return_tensors="pt")
    assert torch.equal(again["input_features"], batch["input_features"])
    # without the log-mel features (a model fed cached encoder states): the same mask, also for lengths that are not
    # whole hops
    clips = [e["target"] for e in examples] + [np.zeros(16001, np.float32), np.zeros(159, np.float32)]
    full = processor(audio=clips, return_tensors="pt")
    masks_only = processor(audio=clips, return_tensors="pt", audio_features=False)
    assert "input_features" not in masks_only and torch.equal(masks_only["attention_mask"], full["attention_mask"])


def test_the_processor_names_bad_input(processor):
    with pytest.raises(ValueError, match=r"^pass at least one of audio=, videos= or text=$"):
        processor()
    with pytest.raises(ValueError, match=r"^example 0: the audio lasts 2\.00 s but the lip clip has 75 frames"):
        processor(audio=[np.zeros(32000, np.float32)], videos=[np.zeros((75, 32, 32), np.uint8)])
    with pytest.raises(ValueError, match=r"^Whisper reads at most 30 s at a time; got 31\.0 s"):
        processor(audio=[np.zeros(16000 * 31, np.float32)])


# --- training ----------------------------------------------------------------------------------------------------------


def test_elegance_train_avsr_trains_the_new_blocks_resumes_and_writes_a_loadable_model(
    random_whisper, tiny_corpus_path, tmp_path
):
    from transformers import AutoProcessor

    from training.train_avsr import main

    out = str(tmp_path / "run")
    flags = ["--data", tiny_corpus_path, "--whisper", random_whisper, "--output_dir", out, "--disable_tqdm", "true"]
    flags += ["--per_device_train_batch_size", "2", "--save_steps", "1", "--logging_steps", "1", "--eval_split", "none"]
    flags += ["--cache_dir", str(tmp_path / "cache"), "--visual_lr_scale", "10", "--fusion_auxiliary_weight", "0.5"]
    assert main([*flags, "--max_steps", "1"]) == 0
    (states,) = (tmp_path / "cache").glob("whisper-states-*")  # the frozen encoder's states of the clips seen
    # at least the step's 2 clips (the Trainer's data loader may have drawn the next batch already)
    assert len(list(states.glob("*.safetensors"))) >= 2 and not list(states.glob("*.partial"))
    first = os.path.join(out, "checkpoint-1")
    assert os.path.isdir(first) and not os.path.exists(os.path.join(out, ".staging"))
    saved = load_file(os.path.join(first, "model.safetensors"))
    assert saved and not any(name.startswith(("model.whisper.", "model.lip_encoder.")) for name in saved)
    assert main([*flags, "--max_steps", "2", "--resume_from_checkpoint", "last"]) == 0
    assert os.path.isdir(os.path.join(out, "checkpoint-2"))
    with open(os.path.join(out, "checkpoint-2", "trainer_state.json")) as stream:
        logged = json.load(stream)["log_history"]
    steps = [entry for entry in logged if "loss" in entry]
    assert steps and all("loss_open_gate" in entry and "loss_recognition" in entry for entry in steps)
    for entry in steps:  # the total is the recognition loss plus the weighted open-gate loss
        assert entry["loss"] == pytest.approx(entry["loss_recognition"] + 0.5 * entry["loss_open_gate"], rel=1e-4)
    trained = AutoModel.from_pretrained(os.path.join(out, "avsr"))
    start = AvurForConditionalGeneration.from_whisper(
        random_whisper, lip_reader=os.path.join(os.path.dirname(os.path.dirname(__file__)), "pretrained", "lip-reader")
    )
    assert torch.equal(trained.whisper.model.encoder.conv1.weight, start.whisper.model.encoder.conv1.weight)
    assert not torch.equal(trained.visual_projection.weight, start.visual_projection.weight)
    assert type(AutoProcessor.from_pretrained(os.path.join(out, "avsr"))).__name__ == "AvurProcessor"
    card = open(os.path.join(out, "avsr", "README.md")).read()
    assert "An **audio-visual speech recogniser**" in card and "- steps: 2" in card and "Not evaluated yet" in card
    # elegance-push's verifier accepts the recogniser's folder (its own code gives the same logits) ...
    from training.release.push import verify_release

    verify_release(os.path.join(out, "avsr"))
    # ... and refuses one whose code is not the package's
    tampered = tmp_path / "tampered"
    shutil.copytree(os.path.join(out, "avsr"), tampered)
    code = (tampered / "modeling_avur.py").read_text()
    (tampered / "modeling_avur.py").write_text(code.replace("torch.tanh(self.gate) *", "(1 + torch.tanh(self.gate)) *"))
    with pytest.raises(ValueError, match="the output of its own code .trust_remote_code. and of this package's"):
        verify_release(str(tampered))


def test_sma_layers_flag_names_layers_or_none():
    from training.train_avsr import parse_sma_layers

    assert parse_sma_layers(None) is None and parse_sma_layers("none") == [] and parse_sma_layers("2,3") == [2, 3]
    with pytest.raises(
        ValueError,
        match=r"^--sma_layers must be comma-separated Whisper encoder layer indices \(e\.g\. '2,3'\) or 'none', "
        r"got 'upper'$",
    ):
        parse_sma_layers("upper")


def test_a_frozen_acoustic_probe_stays_whispers_attention(random_whisper, tiny_corpus_path, tmp_path):
    """``--freeze_acoustic_probe``: the probe is not trained (the exported probe is the one built from Whisper's last
    cross-attention), while the rest of the fusion is."""
    from training.train_avsr import main

    out = str(tmp_path / "run")
    flags = ["--data", tiny_corpus_path, "--whisper", random_whisper, "--output_dir", out, "--disable_tqdm", "true"]
    flags += ["--per_device_train_batch_size", "2", "--max_steps", "2", "--eval_split", "none", "--save_steps", "2"]
    flags += ["--cache_dir", str(tmp_path / "cache"), "--visual_lr_scale", "10", "--fusion_auxiliary_weight", "1.0"]
    assert main([*flags, "--freeze_acoustic_probe", "true"]) == 0
    trained = AutoModel.from_pretrained(os.path.join(out, "avsr"))
    start = AvurForConditionalGeneration.from_whisper(
        random_whisper, lip_reader=os.path.join(os.path.dirname(os.path.dirname(__file__)), "pretrained", "lip-reader")
    )
    for ours, theirs in zip(trained.fusion.probe_parameters(), start.fusion.probe_parameters()):
        assert torch.equal(ours, theirs)
    assert not torch.equal(trained.fusion.gate, start.fusion.gate)


def test_the_audio_only_baseline_trains_whispers_decoder_lora_alone_and_the_lips_train_on_top(
    random_whisper, tiny_corpus_path, tmp_path
):
    from training.train_avsr import AvsrArguments, RecognitionCollator, build_recognition_run, main

    out = str(tmp_path / "run")
    flags = ["--data", tiny_corpus_path, "--whisper", random_whisper, "--output_dir", out, "--disable_tqdm", "true"]
    flags += ["--per_device_train_batch_size", "2", "--eval_split", "none", "--cache_dir", str(tmp_path / "cache")]
    flags += ["--audio_only", "--whisper_lora_rank", "2", "--learning_rate", "1e-2"]
    assert main([*flags, "--max_steps", "2"]) == 0
    trained = AutoModel.from_pretrained(os.path.join(out, "avsr"))  # a plain model: the LoRA merged
    start = WhisperForConditionalGeneration.from_pretrained(random_whisper)
    assert torch.equal(trained.whisper.model.encoder.conv1.weight, start.model.encoder.conv1.weight)
    query = "model.decoder.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(trained.whisper.state_dict()[query], start.state_dict()[query])
    assert torch.equal(trained.fusion.gate, torch.zeros_like(trained.fusion.gate))  # nothing visual trained
    with pytest.raises(ValueError, match=r"^--audio_only trains Whisper's decoder LoRA and nothing else: give it"):
        AvsrArguments(data=tiny_corpus_path, audio_only=True)
    assert RecognitionCollator(None, lips=False).lips is False
    # the lips trained on top of it: --whisper names the baseline's folder, whose Whisper (LoRA merged) the run takes
    on_top, processor, _, _ = build_recognition_run(
        AvsrArguments(data=tiny_corpus_path, whisper=os.path.join(out, "avsr"), eval_split="none", sma_layers="none")
    )
    for name, weight in trained.whisper.state_dict().items():
        assert torch.equal(on_top.model.whisper.state_dict()[name], weight), name
    assert on_top.model.config.sma_layers == [] and torch.equal(on_top.model.fusion.gate, trained.fusion.gate)
    assert (
        processor.tokenizer.decode(processor.tokenizer(" the lips").input_ids, skip_special_tokens=True) == " the lips"
    )


def test_the_visual_path_can_learn_faster_than_whispers_lora(random_whisper, tiny_corpus_path):
    from transformers import TrainingArguments

    from training.train_avsr import AvsrArguments, RecognitionRun, visual_path_optimizer
    from training.whisper_lora import add_decoder_lora

    model = AvurForConditionalGeneration.from_whisper(random_whisper, visual_dim=VISUAL_DIM)
    for parameter in model.whisper.parameters():
        parameter.requires_grad_(False)
    add_decoder_lora(model.whisper, rank=2)
    run = RecognitionRun(model)
    training_args = TrainingArguments(output_dir="unused", learning_rate=1e-3, report_to="none")
    assert visual_path_optimizer(run, training_args, 1.0) is None  # the Trainer's own optimizer
    visual, lora = visual_path_optimizer(run, training_args, 10.0).param_groups
    assert visual["lr"] == pytest.approx(1e-2) and lora["lr"] == pytest.approx(1e-3)
    assert any(p is model.fusion.gate for p in visual["params"])
    assert len(lora["params"]) == sum(1 for name, _ in model.whisper.named_parameters() if "lora_" in name)
    with pytest.raises(ValueError, match=r"^--visual_lr_scale must be positive, got 0.0$"):
        AvsrArguments(data=tiny_corpus_path, visual_lr_scale=0.0)


def test_the_recognition_card_carries_the_evaluation(random_whisper):
    from huggingface_hub import ModelCard

    from hub_cards import render_recognition_card

    config = AvurForConditionalGeneration.from_whisper(random_whisper, visual_dim=VISUAL_DIM).config
    evaluation = {
        "data": "data/default-noisy",
        "splits": {"test_noisy": {"examples": 150, "wer": {"av": 0.3, "audio_only": 0.4, "clean": 0.2}}},
    }
    card = render_recognition_card(config, steps=100, training={"data": "d"}, evaluation=evaluation)
    assert "| test_noisy | 150 | 30.0% | 40.0% | 20.0% | 25.0% |" in card.content
    (result,) = ModelCard(card.content).data.eval_results
    assert (result.metric_type, result.metric_value, result.dataset_split) == ("wer", 0.3, "test_noisy")


# --- evaluation ----------------------------------------------------------------------------------------------------


def test_elegance_evaluate_scores_a_recogniser_by_wer_and_cer(random_whisper, tiny_corpus_path, tmp_path):
    import json

    from processing import AvurProcessor
    from training.evaluation.cli import main

    reader = os.path.join(os.path.dirname(os.path.dirname(__file__)), "pretrained", "lip-reader")
    model = AvurForConditionalGeneration.from_whisper(random_whisper, lip_reader=reader)
    folder = str(tmp_path / "avsr")
    model.save_pretrained(folder)
    AvurProcessor.from_whisper(random_whisper, lip_roi_size=model.config.lip_roi_size).save_pretrained(folder)
    out = str(tmp_path / "recognition.json")
    args = ["--model", folder, "--data", tiny_corpus_path, "--splits", "test,test_noisy", "--max_examples", "6"]
    assert main([*args, "--out", out]) == 0
    results = json.load(open(out))
    for split in ("test", "test_noisy"):
        summary = results["splits"][split]
        assert summary["examples"] == 6 and set(summary["wer"]) == set(summary["cer"]) == {"av", "audio_only", "clean"}
        # the gate is closed: with or without lips the model is the same Whisper, so are its transcripts
        assert (
            summary["wer"]["av"] == summary["wer"]["audio_only"]
            and summary["cer"]["av"] == summary["cer"]["audio_only"]
        )
    assert list(results["splits"]["test_noisy"]["by_snr"]) == ["-5", "0"]
    assert set(results["splits"]["test_noisy"]["by_noise"]) == {"coloured", "babble", "nonstationary"}
    report = open(str(tmp_path / "recognition.md")).read()
    assert "WER reduction by the lips" in report and "test_noisy, WER by SNR (dB):" in report
    # the same scores from the encoder states kept on disk, the second time without encoding a clip
    open_gate(model)  # a model whose lips change its transcripts
    model.save_pretrained(folder)
    cached = [*args, "--audio_state_cache", str(tmp_path / "states"), "--lips_control"]
    assert main([*args, "--out", out]) == 0 and main([*cached, "--out", str(tmp_path / "cached.json")]) == 0
    stored = sorted(os.listdir(next((tmp_path / "states").glob("whisper-states-*"))))
    assert main([*cached, "--out", str(tmp_path / "again.json")]) == 0
    assert sorted(os.listdir(next((tmp_path / "states").glob("whisper-states-*")))) == stored
    direct, first, second = (
        json.load(open(tmp_path / name))["splits"] for name in ("recognition.json", "cached.json", "again.json")
    )
    assert first == second
    for split, summary in direct.items():  # the cache changes nothing; the lips control adds its own column
        for measure in ("wer", "cer"):
            control = first[split][measure].pop("av_other_lips")
            assert 0 <= control and first[split][measure] == summary[measure]
    assert first["test_noisy"]["by_snr"]["0"]["av"] == direct["test_noisy"]["by_snr"]["0"]["av"]


def test_the_extraction_then_recognition_chain(random_whisper, tiny_corpus_path, tmp_path):
    """``--extractor``: the recogniser also transcribes the extraction model's estimate of each target, cut to the
    mixture's length and brought to its scale."""
    import json

    from processing import AvurProcessor
    from training.data import load_split
    from training.evaluation.cli import load_model, main
    from training.evaluation.recognition_scoring import extracted_speech

    root = os.path.dirname(os.path.dirname(__file__))
    extractor = os.path.join(root, "pretrained", "usev-tiny")
    rows = load_split(tiny_corpus_path, "test", max_examples=3)[:3]
    mixtures = [np.asarray(wave, dtype=np.float32) for wave in rows["mixture"]]
    estimates = extracted_speech(*load_model(extractor), rows, mixtures)
    for estimate, mixture in zip(estimates, mixtures):
        assert estimate.shape == mixture.shape and np.abs(estimate).max() > 0
        assert np.dot(mixture, estimate) / np.dot(estimate, estimate) == pytest.approx(1.0, rel=1e-4)  # at its scale

    model = AvurForConditionalGeneration.from_whisper(
        random_whisper, lip_reader=os.path.join(root, "pretrained", "lip-reader")
    )
    folder = str(tmp_path / "avsr")
    model.save_pretrained(folder)
    AvurProcessor.from_whisper(random_whisper, lip_roi_size=model.config.lip_roi_size).save_pretrained(folder)
    out = str(tmp_path / "chain.json")
    args = ["--data", tiny_corpus_path, "--splits", "test", "--max_examples", "2", "--out", out]
    assert main(["--model", folder, "--extractor", extractor, *args]) == 0
    summary = json.load(open(out))["splits"]["test"]
    assert set(summary["wer"]) == {"av", "audio_only", "clean", "extracted"}
    assert "WER extracted" in open(str(tmp_path / "chain.md")).read()
    with pytest.raises(ValueError, match=r"^--extractor feeds a recogniser; --model is an extraction model"):
        main(["--model", extractor, "--extractor", extractor, *args])
    with pytest.raises(ValueError, match=r"is a recogniser; pass a target speech extraction model's folder$"):
        main(["--model", folder, "--extractor", folder, *args])


def test_elegance_train_vur_fits_units_makes_nbest_lists_and_trains_the_rescorer(
    random_whisper, tiny_corpus_path, tmp_path, monkeypatch, capsys
):
    import json

    from conftest import tiny_causal_lm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from processing import AvurProcessor
    from training.data import load_split
    from training.train_vur import main

    reader = os.path.join(os.path.dirname(os.path.dirname(__file__)), "pretrained", "lip-reader")
    recognizer = AvurForConditionalGeneration.from_whisper(random_whisper, lip_reader=reader)
    folder = str(tmp_path / "avsr")
    recognizer.save_pretrained(folder)
    AvurProcessor.from_whisper(random_whisper, lip_roi_size=recognizer.config.lip_roi_size).save_pretrained(folder)
    llm = tiny_causal_lm("qwen3", str(tmp_path / "qwen3"))
    out = str(tmp_path / "vur-run")
    flags = ["--recognizer", folder, "--data", tiny_corpus_path, "--llm", llm, "--output_dir", out]
    flags += ["--num_units", "8", "--nbest", "2", "--max_examples", "4", "--save_steps", "1", "--disable_tqdm", "true"]
    flags += ["--cache_dir", str(tmp_path / "cache")]
    assert main([*flags, "--max_steps", "1", "--per_device_train_batch_size", "2"]) == 0
    (states,) = (tmp_path / "cache").glob("whisper-states-*")  # the N-best lists came from the encoder states
    assert len(list(states.glob("*.safetensors"))) == 4
    saved = load_file(os.path.join(out, "checkpoint-1", "model.safetensors"))
    assert any("lora_" in name for name in saved) and not any("q_proj.base_layer" in name for name in saved)
    stored = json.load(open(os.path.join(out, "nbest-lists", "nbest.json")))
    assert [len(example["hypotheses"]) for example in stored["examples"]] == [2, 2, 2, 2]

    import training.train_vur

    def no_beam_search(*args, **kwargs):
        raise AssertionError("the resumed run made its N-best lists again")

    monkeypatch.setattr(training.train_vur, "nbest_examples", no_beam_search)
    capsys.readouterr()
    resume = ["--max_steps", "2", "--per_device_train_batch_size", "2", "--resume_from_checkpoint", "last"]
    assert main([*flags, *resume]) == 0
    assert (
        f"visual units and 4 N-best lists loaded from {os.path.join(out, 'nbest-lists')}\n" in capsys.readouterr().out
    )
    monkeypatch.undo()
    vur = os.path.join(out, "vur")
    assert json.load(open(os.path.join(vur, "vur_config.json")))["num_units"] == 8
    assert VisualUnitQuantizer.from_pretrained(vur).num_units == 8
    tokenizer = AutoTokenizer.from_pretrained(vur)
    model = AutoModelForCausalLM.from_pretrained(vur)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) and "<vu_7>" in tokenizer.get_vocab()
    assert not any("lora" in name for name, _ in model.named_parameters())  # merged

    # the second stage at inference: the N-best rescored, scored by elegance-evaluate beside the beam's own choice
    from training.evaluation.cli import main as evaluate
    from training.visual_unit_refinement import VisualUnitRefinement

    refinement = VisualUnitRefinement.from_pretrained(vur)
    assert refinement.nbest == 2 and refinement.quantizer.num_units == 8
    rows = load_split(tiny_corpus_path, "test_noisy", max_examples=2)[:2]
    audio = [np.asarray(wave, dtype=np.float32) for wave in rows["mixture"]]
    processor = AvurProcessor.from_pretrained(folder)
    rescored, beam_first = refinement(recognizer.eval(), processor, audio, list(rows["lips"]))
    assert len(rescored) == len(beam_first) == 2
    refinement.first_pass_weight = 1e9  # the first pass decides alone: the beam's own first choice
    assert refinement(recognizer, processor, audio, list(rows["lips"]))[0] == beam_first
    report = str(tmp_path / "vur-eval.json")
    flags = ["--model", folder, "--vur", vur, "--data", tiny_corpus_path, "--splits", "test_noisy"]
    assert evaluate([*flags, "--max_examples", "2", "--out", report]) == 0
    assert set(json.load(open(report))["splits"]["test_noisy"]["wer"]) == {
        "av",
        "audio_only",
        "clean",
        "av_beam",
        "av_vur",
    }
    with pytest.raises(
        ValueError, match=r"has no vur_config.json: pass the vur folder that elegance-train-vur writes$"
    ):
        VisualUnitRefinement.from_pretrained(folder)


def test_the_recognition_pipeline_transcribes_with_and_without_lips(
    random_whisper, tiny_corpus, saved_models, tmp_path
):
    from transformers import pipeline

    import pipelines  # noqa: F401
    from processing import AvurProcessor

    reader = os.path.join(os.path.dirname(os.path.dirname(__file__)), "pretrained", "lip-reader")
    model = AvurForConditionalGeneration.from_whisper(random_whisper, lip_reader=reader)
    open_gate(model)
    folder = str(tmp_path / "avsr")
    model.save_pretrained(folder)
    processor = AvurProcessor.from_whisper(random_whisper, lip_roi_size=model.config.lip_roi_size)
    processor.save_pretrained(folder)
    example = tiny_corpus["test"][0]
    recognise = pipeline("audio-visual-speech-recognition", model=folder)
    with_lips = recognise(example["mixture"], lips=example["lips"])
    np.save(tmp_path / "lips.npy", example["lips"])
    assert recognise(example["mixture"], lips=str(tmp_path / "lips.npy")) == with_lips
    # what the pipeline says is the model's own greedy transcript
    inputs = processor(audio=[example["mixture"]], videos=[example["lips"]], return_tensors="pt")
    ids = model.eval().generate(**{k: inputs[k] for k in processor.model_input_names}, max_new_tokens=26)
    assert with_lips == {"text": processor.batch_decode(ids)[0]}
    assert isinstance(recognise(example["mixture"])["text"], str)  # audio only
    with pytest.raises(ValueError, match=r"^audio-visual-speech-recognition needs an AVUR recogniser"):
        pipeline("audio-visual-speech-recognition", model=saved_models["usev-tiny"])
