"""AVUR-LLM's refinement stage: the visual-unit quantizer (k-means, save/load), run-length compression, the
list-wise loss on a hand-made N-best, and the rescorer on locally saved tiny random Qwen3, Llama and Whisper models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import tiny_causal_lm
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
)

from modeling_elegance.visual_unit_rescorer import VisualUnitRescorer
from modeling_elegance.visual_units import VisualUnitQuantizer, run_length_compress, run_length_expand


def blobs(seed=0, per_blob=200, dim=6):
    """Three well separated clusters of points and their true labels."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0] * dim, [10.0] * dim, [-10.0] * dim])
    labels = np.repeat(np.arange(3), per_blob)
    return (centres[labels] + rng.standard_normal((len(labels), dim))).astype(np.float32), labels


def test_the_quantizer_finds_the_clusters_and_round_trips(tmp_path):
    points, labels = blobs()
    quantizer = VisualUnitQuantizer.fit([points[:300], points[300:]], num_units=3, seed=0)
    units = quantizer(torch.from_numpy(points)[None])[0].numpy()
    # one unit per cluster, whatever the numbering
    assert all(len(set(units[labels == label])) == 1 for label in range(3)) and len(set(units)) == 3
    quantizer.save_pretrained(str(tmp_path))
    reloaded = VisualUnitQuantizer.from_pretrained(str(tmp_path))
    assert torch.equal(reloaded.centroids, quantizer.centroids) and reloaded.num_units == 3
    assert torch.equal(reloaded(torch.from_numpy(points)[None]), quantizer(torch.from_numpy(points)[None]))


def test_quantizer_errors(tmp_path):
    points, _ = blobs(per_blob=2)
    with pytest.raises(ValueError, match=r"^k-means with 10 units needs at least as many frames, got 6$"):
        VisualUnitQuantizer.fit(points, num_units=10)
    quantizer = VisualUnitQuantizer(torch.zeros(4, 6))
    with pytest.raises(ValueError, match=r"^features have width 5; this quantizer was fitted on width 6$"):
        quantizer(torch.zeros(1, 3, 5))
    with pytest.raises(FileNotFoundError, match="holds no visual-unit quantizer"):
        VisualUnitQuantizer.from_pretrained(str(tmp_path))


def test_run_length_compression():
    assert run_length_compress([5, 5, 5, 2, 2, 7]) == ([5, 2, 7], [3, 2, 1])
    assert run_length_compress([]) == ([], [])
    units = np.random.default_rng(0).integers(0, 3, 100)
    values, counts = run_length_compress(units)
    assert run_length_expand(values, counts) == units.tolist() and all(a != b for a, b in zip(values, values[1:]))


def test_the_listwise_loss_on_a_hand_made_n_best():
    scores = torch.tensor([1.0, 3.0, 2.0])
    loss = VisualUnitRescorer.listwise_loss(scores, [0.5, 0.2, 0.1])  # the third hypothesis is the best
    assert loss.item() == pytest.approx(math.log(math.exp(1) + math.exp(3) + math.exp(2)) - 2.0, abs=1e-6)
    assert VisualUnitRescorer.rerank(scores, torch.tensor([0.0, 0.0, 5.0]), 0.5) == 2
    assert VisualUnitRescorer.rerank(scores, torch.tensor([0.0, 0.0, 5.0]), 0.1) == 1


@pytest.mark.parametrize("kind", ["qwen3", "llama", "whisper"])
def test_the_rescorer_learns_to_prefer_the_lowest_wer_hypothesis(kind, tmp_path, random_whisper):
    folder = random_whisper if kind == "whisper" else tiny_causal_lm(kind, str(tmp_path / kind))
    rescorer = VisualUnitRescorer(
        AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder), num_units=16, lora_rank=4
    )
    assert rescorer.tokenizer.convert_tokens_to_ids("<vu_15>") != rescorer.tokenizer.unk_token_id
    units = [3, 3, 3, 7, 7, 1]
    assert rescorer.prompt(units) == "Visual units: <vu_3><vu_7><vu_1>\nTranscript:"
    hypotheses = ["the cat sat", "the hat sat", "a cat sat down"]
    scores = rescorer.score(units, hypotheses)
    assert scores.shape == (3,) and torch.isfinite(scores).all() and (scores < 0).all()
    # the prompt's tokens do not count: one hypothesis scored alone scores the same
    assert rescorer.score(units, hypotheses[:1])[0].item() == pytest.approx(scores[0].item(), abs=1e-4)
    trainable = [name for name, p in rescorer.named_parameters() if p.requires_grad]
    assert any("lora_" in name for name in trainable) and any("embed" in name for name in trainable)
    optimizer = torch.optim.Adam([p for p in rescorer.parameters() if p.requires_grad], lr=1e-2)
    wers = [0.34, 0.0, 0.67]
    losses = []
    for _ in range(8):
        loss = rescorer.listwise_loss(rescorer.score(units, hypotheses), wers)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 2
    assert int(rescorer.score(units, hypotheses).argmax()) == 1


def test_whispers_decoder_scores_as_a_text_lm_after_a_transcript_prefix_with_silent_audio(random_whisper, tmp_path):
    """A hypothesis's score is the summed log-probability Whisper itself gives its tokens when decoding a transcript
    (``<|startoftranscript|><|notimestamps|>``, then the prompt) from one frame of zero encoder states; saved and
    loaded as elegance-train-vur writes it, the rescorer scores the same."""
    from transformers import WhisperForConditionalGeneration

    rescorer = VisualUnitRescorer(
        AutoModelForCausalLM.from_pretrained(random_whisper), AutoTokenizer.from_pretrained(random_whisper), 4, 0
    ).eval()
    whisper = WhisperForConditionalGeneration.from_pretrained(random_whisper).eval()
    whisper.resize_token_embeddings(len(rescorer.tokenizer))
    tokenizer = rescorer.tokenizer
    units, hypothesis = [1, 1, 3], "bin blue at f two now"
    prefix = tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|notimestamps|>"])
    prompt = prefix + tokenizer(rescorer.prompt(units), add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + tokenizer(" " + hypothesis, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        silence = (torch.zeros(1, 1, whisper.config.d_model),)
        logits = whisper(encoder_outputs=silence, decoder_input_ids=ids).logits[0, :-1]
        expected = logits.log_softmax(-1).gather(-1, ids[0, 1:, None])[len(prompt) - 1 :].sum()
        assert rescorer.score(units, [hypothesis])[0].item() == pytest.approx(expected.item(), abs=1e-4)
    rescorer.language_model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reloaded = VisualUnitRescorer.from_pretrained(str(tmp_path))
    assert type(reloaded.language_model).__name__ == "WhisperForCausalLM"
    with torch.no_grad():
        assert reloaded.score(units, [hypothesis])[0].item() == pytest.approx(expected.item(), abs=1e-4)


def test_a_prompt_longer_than_the_lms_context_is_refused(random_whisper):
    rescorer = VisualUnitRescorer(
        AutoModelForCausalLM.from_pretrained(random_whisper), AutoTokenizer.from_pretrained(random_whisper), 4, 0
    )
    units = [0, 1] * 40  # 80 unit tokens after compression, beyond the tiny Whisper's 64 positions
    with pytest.raises(ValueError, match=r"^the prompt \(\d+ tokens, 80 visual-unit frames\) and the longest "):
        rescorer.score(units, ["bin blue"])


def test_the_nbest_store_reuses_lists_only_for_the_same_settings(tmp_path):
    from training.nbest_store import load_nbest_lists, save_nbest_lists

    quantizer = VisualUnitQuantizer(torch.arange(6.0).reshape(3, 2))
    examples = [{"units": [0, 2, 2], "hypotheses": ["bin blue", "bin blew"], "word_error_rates": [0.0, 0.5]}]
    settings = {"recognizer": "abc", "nbest": 2, "num_units": 3, "seed": 0}
    logged = []
    assert load_nbest_lists(str(tmp_path), settings, logged.append) is None  # nothing stored yet
    save_nbest_lists(str(tmp_path), settings, quantizer, examples)
    loaded_quantizer, loaded_examples = load_nbest_lists(str(tmp_path), dict(settings), logged.append)
    assert loaded_examples == examples and torch.equal(loaded_quantizer.centroids, quantizer.centroids)
    folder = tmp_path / "nbest-lists"
    assert logged == [f"visual units and 1 N-best lists loaded from {folder}"]
    assert load_nbest_lists(str(tmp_path), {**settings, "nbest": 5, "seed": 1}, logged.append) is None
    assert logged[-1] == f"{folder} was made with other settings (nbest, seed): making the N-best lists again"
    assert not (tmp_path / "nbest-lists.partial").exists()  # written atomically, staging cleared
