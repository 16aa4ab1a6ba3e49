"""The pretrained lip encoder: `elegance-pretrain-lips`, backbones built on it, the cache of its embeddings, and
dynamic mixing."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoModel, TrainingArguments

from modeling_elegance import LipReadingConfig, LipReadingModel, UsevForTargetSpeechExtraction, preset_config
from processing import LipVideoProcessor
from training.arguments import GuidanceArguments
from training.lip_embedding_cache import LipEmbeddings
from training.pretraining.lip_reading import frame_labels, phone_sequence, phone_vocabulary
from training.pretraining.lip_reading import main as pretrain_lips
from training.train import build_run


@pytest.fixture(scope="module")
def lip_reader(tiny_corpus_path, tmp_path_factory):
    """A lip reader pretrained for a few steps by the CLI, scored on the tiny corpus's test split."""
    out = str(tmp_path_factory.mktemp("lips"))
    torch.manual_seed(0)
    assert (
        pretrain_lips(
            [
                "--data",
                tiny_corpus_path,
                "--output_dir",
                out,
                "--max_steps",
                "6",
                "--save_strategy",
                "no",
                "--disable_tqdm",
                "true",
                "--warmup_steps",
                "0",
                "--per_device_train_batch_size",
                "4",
                "--lip_embedding_dim",
                "32",
                "--use_cpu",
                "true",
            ]
        )
        == 0
    )
    return os.path.join(out, "lip-reader")


def test_pretraining_writes_a_loadable_lip_reader_with_its_evaluation(lip_reader, tiny_corpus):
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "lip_reading_evaluation.json"} <= set(
        os.listdir(lip_reader)
    )
    assert not os.path.exists(lip_reader + ".partial")
    model = AutoModel.from_pretrained(lip_reader)
    assert isinstance(model, LipReadingModel)
    phonemes = phone_vocabulary(tiny_corpus["train"]["phoneme_timings"])
    assert model.config.phonemes == phonemes and phonemes[0] == "_" and "ˈa" not in phonemes
    assert (
        model.config.lip_roi_size == tiny_corpus["train"][0]["lips"].shape[-1] and model.config.lip_embedding_dim == 32
    )
    with open(os.path.join(lip_reader, "lip_reading_evaluation.json")) as stream:
        evaluation = json.load(stream)
    assert (
        evaluation["split"] == "test" and evaluation["clips"] == len(tiny_corpus["test"]) and evaluation["steps"] == 6
    )
    assert 0.0 <= evaluation["frame_accuracy"] <= 1.0 and evaluation["phone_error_rate"] >= 0.0
    assert evaluation["chance_frame_accuracy"] == pytest.approx(1 / len(phonemes))
    assert 0.0 < evaluation["majority_class_frame_accuracy"] <= 1.0


def test_frame_labels_follow_the_phone_timings():
    vocabulary = {"_": 0, "a": 1, "t": 2}
    timings = [
        {"phoneme": "ˈa", "start": 0.04, "end": 0.12},
        {"phoneme": "t", "start": 0.12, "end": 0.16},
        {"phoneme": "x", "start": 0.16, "end": 0.2},
    ]
    assert frame_labels(timings, 6, 25, vocabulary).tolist() == [0, 1, 1, 2, -100, 0]
    assert phone_sequence([0, 1, 1, 0, 1, 2, 2, 0]) == [1, 1, 2]


def test_a_backbone_built_on_the_lip_reader_starts_with_exactly_its_weights(lip_reader, tmp_path):
    copy = str(tmp_path / "lip-reader")
    shutil.copytree(lip_reader, copy)
    config = preset_config("usev-tiny", lip_encoder=copy)
    reader = LipReadingModel.from_pretrained(copy)
    assert (config.lip_embedding_dim, config.lip_temporal_layers, config.lip_roi_size) == (
        32,
        1,
        reader.config.lip_roi_size,
    )
    model = UsevForTargetSpeechExtraction(config)
    encoder = model.visual_encoder.lip_encoder.state_dict()
    assert encoder.keys() == reader.encoder.state_dict().keys()
    assert all(torch.equal(encoder[name], tensor) for name, tensor in reader.encoder.state_dict().items())
    # once saved, the model no longer needs the lip reader's folder
    model.save_pretrained(tmp_path / "backbone")
    shutil.rmtree(copy)
    reloaded = AutoModel.from_pretrained(tmp_path / "backbone")
    assert all(torch.equal(reloaded.state_dict()[name], tensor) for name, tensor in model.state_dict().items())


def test_a_lip_encoder_of_other_sizes_is_refused_with_the_fix(lip_reader):
    config = preset_config("usev-tiny", lip_encoder=lip_reader)
    config.lip_embedding_dim = 64
    with pytest.raises(
        ValueError,
        match=r"^the model's lip encoder does not match the lip reader in .*: lip_embedding_dim=64 "
        r"\(the lip reader has 32\); build the config with preset_config\(\.\.\., lip_encoder=",
    ):
        UsevForTargetSpeechExtraction(config)
    with pytest.raises(FileNotFoundError, match=r"is not a saved lip-reading model \(no config.json\)"):
        preset_config("usev-tiny", lip_encoder="/nonexistent/lip-reader")


def test_lip_embedding_cache_hits_on_the_second_run_and_follows_the_encoder(lip_reader, tiny_corpus, tmp_path):
    reader = LipReadingModel.from_pretrained(lip_reader).eval()
    processor = LipVideoProcessor.from_pretrained(lip_reader)
    clips = [np.asarray(clip, dtype=np.uint8) for clip in tiny_corpus["validation"]["lips"]]
    first = LipEmbeddings(reader.encoder, processor).load_or_compute(clips, str(tmp_path), log=lambda m: None)
    second = LipEmbeddings(reader.encoder, processor).load_or_compute(
        list(reversed(clips)), str(tmp_path), log=lambda m: None
    )
    assert (first.cache_hit, second.cache_hit) == (False, True) and first.path == second.path
    # the cached embedding of a clip is what the encoder gives that clip
    with torch.inference_mode():
        direct = reader(**processor([clips[0]], return_tensors="pt")).embeddings[0]
    assert torch.allclose(second([clips[0]], [True])[0], direct, atol=1e-5)
    # an impaired (uncached) clip is embedded on the fly
    assert torch.allclose(second([clips[0]], [False])[0], direct, atol=1e-5)
    with torch.no_grad():
        reader.encoder.frontend.stem[0].weight.mul_(1.5)
    changed = LipEmbeddings(reader.encoder, processor).load_or_compute(clips, str(tmp_path), log=lambda m: None)
    assert not changed.cache_hit and changed.path != first.path and len(os.listdir(tmp_path)) == 2


def test_training_with_a_frozen_lip_encoder_feeds_cached_embeddings(lip_reader, tiny_corpus_path, tmp_path):
    args = GuidanceArguments(
        backbone="usev-tiny",
        data=tiny_corpus_path,
        lip_encoder=lip_reader,
        eval_split="none",
        embedding_cache_dir=str(tmp_path),
        impair_probability=0.5,
    )
    model, _, train, _, collator, _ = build_run(
        args, TrainingArguments(output_dir="/tmp/unused", use_cpu=True, report_to="none"), log=lambda m: None
    )
    encoder = model.backbone.visual_encoder.lip_encoder
    assert not any(p.requires_grad for p in encoder.parameters())
    model.train()
    assert not any(m.training for m in encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    examples = [train[index] for index in range(4)]
    batch = collator(examples)
    assert "lip_frames" not in batch and batch["lip_embeds"].shape[-1] == 32
    frames = collator.processor.lip_feature_extractor([np.asarray(e["lips"]) for e in examples], return_tensors="pt")
    with torch.inference_mode():
        direct = model.backbone.visual_encoder.lip_encoder(frames["lip_frames"])
    assert torch.allclose(batch["lip_embeds"], direct, atol=1e-5)
    output = model(**batch)
    output.loss.backward()
    assert all(p.grad is None for p in encoder.parameters())


def test_lip_reading_model_names_bad_input():
    model = LipReadingModel(LipReadingConfig(lip_roi_size=32, lip_embedding_dim=16, phonemes=["_", "a"]))
    with pytest.raises(ValueError, match=r"^lip_frames has shape \(1, 5, 48, 48\); expected \(batch, frames, 32, 32\)"):
        model(lip_frames=torch.zeros(1, 5, 48, 48))
    with pytest.raises(ValueError, match=r"^phonemes must be distinct labels with the silence label '_' first"):
        LipReadingConfig(phonemes=["a", "_"])


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
