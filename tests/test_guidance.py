"""Guidance training: every head, their combination, the embedding cache, checkpoints, resume, 2-process data
parallelism and the guidance-free export."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import safetensors.torch
import torch
from transformers import AutoModel, AutoProcessor, TrainingArguments

from training.arguments import GuidanceArguments, parse_guidance
from training.heads.cmkt import shift_sequence
from training.release.export import export_guidance_free, probe_inputs
from training.train import build_run
from training.train import main as train_main
from training.transcript_embedding_cache import TranscriptEmbeddings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("llm_cache"))


@pytest.fixture(scope="session")
def tiny_pslm(tiny_corpus_path, tmp_path_factory):
    """A PSLM pretrained for a few steps by the package's own recipe."""
    from training.pretraining.pslm import main as pretrain

    out = str(tmp_path_factory.mktemp("pslm"))
    torch.manual_seed(0)
    pretrain(
        [
            "--data",
            tiny_corpus_path,
            "--output_dir",
            out,
            "--max_steps",
            "4",
            "--eval_split",
            "none",
            "--save_strategy",
            "no",
            "--disable_tqdm",
            "true",
            "--warmup_steps",
            "0",
        ]
    )
    return os.path.join(out, "pslm")


def make_run(corpus, cache_dir, guidance, pslm=None, backbone="usev-tiny", **overrides):
    args = GuidanceArguments(
        backbone=backbone,
        data=corpus,
        guidance=guidance,
        pslm=pslm,
        embedding_cache_dir=cache_dir,
        eval_split="none",
        **overrides,
    )
    training_args = TrainingArguments(output_dir="/tmp/unused", use_cpu=True, report_to="none")
    torch.manual_seed(0)
    return build_run(args, training_args, log=lambda message: None)


def first_batch(dataset, collator, size=4):
    return collator([dataset[index] for index in range(size)])


@pytest.mark.parametrize("guidance", ["output", "intermediate", "cmkt"])
def test_auxiliary_loss_is_finite_and_decreases_on_a_fixed_batch(tiny_corpus_path, cache_dir, tiny_pslm, guidance):
    model, _, train, _, collator, _ = make_run(tiny_corpus_path, cache_dir, guidance, pslm=tiny_pslm)
    batch = first_batch(train, collator)
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    values = []
    for _ in range(8):
        output = model(**batch)
        values.append(float(output.components[guidance]))
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
    assert all(torch.isfinite(torch.tensor(values))) and values[0] != 0.0
    assert values[-1] < 0.9 * values[0], values


def test_every_head_at_once_logs_each_component(tiny_corpus_path, cache_dir, tiny_pslm):
    model, _, train, _, collator, _ = make_run(
        tiny_corpus_path, cache_dir, "output,intermediate,input,cmkt", pslm=tiny_pslm
    )
    output = model.train()(**first_batch(train, collator))
    assert set(output.components) == {"extraction", "output", "intermediate", "cmkt"}
    # CMKT: L = a * L_main + (1 - a) * L_cmkt, other heads added with their weights
    expected = 0.9 * output.components["extraction"] + 0.1 * output.components["cmkt"]
    expected += 1.0 * output.components["output"] + 0.1 * output.components["intermediate"]
    assert torch.allclose(output.loss.detach(), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "guidance,frozen",
    [
        ("output", "heads.output.speech_encoder."),
        ("intermediate", "heads.intermediate.language_model."),
        ("cmkt", None),
    ],
)
def test_head_gradient_reaches_the_extractor_and_no_frozen_weight(
    tiny_corpus_path, cache_dir, tiny_pslm, guidance, frozen
):
    model, _, train, _, collator, _ = make_run(tiny_corpus_path, cache_dir, guidance, pslm=tiny_pslm)
    batch = first_batch(train, collator)
    model.train()
    backbone_output = model.backbone(**{k: v for k, v in batch.items() if k in model._backbone_arguments})
    model.heads[guidance](backbone_output, batch).backward()
    extractor_grads = [p.grad for n, p in model.backbone.named_parameters() if n.startswith("extractor.blocks")]
    assert all(g is not None and g.abs().sum() > 0 for g in extractor_grads)
    if frozen:
        frozen_params = [(n, p) for n, p in model.named_parameters() if n.startswith(frozen)]
        assert frozen_params
        for name, parameter in frozen_params:
            if parameter.requires_grad:  # only weights the checkpoint lacked (the MiniLM's LM head) may train
                assert "cls.predictions" in name, name
            else:
                assert parameter.grad is None, name


def test_intermediate_guidance_trains_only_new_llm_weights_and_keeps_them_in_checkpoints(tiny_corpus_path, cache_dir):
    model, *_ = make_run(tiny_corpus_path, cache_dir, "intermediate")
    trainable_llm = sorted(
        n for n, p in model.heads["intermediate"].language_model.named_parameters() if p.requires_grad
    )
    assert trainable_llm == [
        "cls.predictions.bias",
        "cls.predictions.transform.LayerNorm.bias",
        "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.transform.dense.bias",
        "cls.predictions.transform.dense.weight",
    ]
    state = model.checkpoint_state_dict()
    assert not any(".encoder.layer." in name for name in state)
    assert "heads.intermediate.language_model.cls.predictions.bias" in state
    assert sum(1 for name in state if name.startswith("heads.intermediate.cross_attentions.")) > 0


def test_lora_makes_only_adapters_trainable(tiny_corpus_path, cache_dir):
    model, *_ = make_run(tiny_corpus_path, cache_dir, "intermediate", llm_lora_rank=2)
    names = [n for n, p in model.heads["intermediate"].language_model.named_parameters() if p.requires_grad]
    lora = [n for n in names if "lora_" in n]
    assert len(lora) == 6 * 2 * 2  # 6 blocks x (query, value) x (A, B)
    assert all("lora_" in n or n.startswith("cls.predictions") for n in names)


def test_input_guidance_uses_real_embeddings_only_for_kept_examples_and_zeros_at_evaluation(
    tiny_corpus_path, cache_dir
):
    model, _, train, _, collator, _ = make_run(tiny_corpus_path, cache_dir, "input", input_probability=0.5)
    assert model.backbone.config.prior_embedding_dim == 384
    batch = first_batch(train, collator, size=8)
    head = model.heads["input"]
    keep = batch["prior_keep"]
    assert 0 < int(keep.sum()) < 8  # seed 0 draws a mix at p = 0.5
    prior = head.train().backbone_inputs(batch)["prior_embeds"]
    assert torch.equal(prior[keep], batch["transcript_embeds"][keep])
    assert prior[~keep].abs().sum() == 0
    assert head.eval().backbone_inputs(batch)["prior_embeds"].abs().sum() == 0
    # evaluation with zero priors equals inference with no prior at all
    model.eval()
    inputs = {k: batch[k][:2] for k in ("input_values", "lip_frames", "audio_attention_mask", "video_attention_mask")}
    with torch.no_grad():
        zeros = model(
            **inputs, **{k: v[:2] for k, v in batch.items() if k.startswith(("transcript", "prior", "embedding"))}
        ).waveform
        none = model.backbone(**inputs).waveform
    assert torch.allclose(zeros, none, atol=1e-6)


def test_shift_sequence_delays_and_advances_within_each_row():
    values = torch.arange(1, 6, dtype=torch.float32).view(1, 5, 1).repeat(3, 1, 1)
    mask = torch.tensor([[1, 1, 1, 1, 0]] * 3)
    shifted, valid = shift_sequence(values, mask, torch.tensor([0, 1, -2]))
    assert shifted[0, :, 0].tolist()[:4] == [1, 2, 3, 4] and valid[0].tolist() == [1, 1, 1, 1, 0]
    assert shifted[1, 1:4, 0].tolist() == [1, 2, 3] and valid[1].tolist() == [0, 1, 1, 1, 0]
    assert shifted[2, :2, 0].tolist() == [3, 4] and valid[2].tolist() == [1, 1, 0, 0, 0]


def test_training_draws_depend_on_seed_epoch_and_index_only(tiny_corpus_path, cache_dir):
    _, _, train, _, _, _ = make_run(tiny_corpus_path, cache_dir, "input,cmkt", cmkt_max_shift=3)
    first = train[5]
    again = train[5]
    assert torch.equal(torch.as_tensor(first["lips"]), torch.as_tensor(again["lips"]))
    assert (first["prior_keep"], first["embedding_shift"]) == (again["prior_keep"], again["embedding_shift"])
    train.set_epoch(1)
    assert not all(
        torch.equal(torch.as_tensor(train[i]["lips"]), torch.as_tensor(train.dataset[i]["lips"])) for i in range(4)
    )


def test_embedding_cache_is_hit_on_the_second_run(tiny_corpus, tmp_path):
    texts = [str(text) for text in tiny_corpus["train"]["transcript"]]
    first = TranscriptEmbeddings.load_or_compute(texts, None, 32, str(tmp_path), log=lambda m: None)
    second = TranscriptEmbeddings.load_or_compute(list(reversed(texts)), None, 32, str(tmp_path), log=lambda m: None)
    assert (first.cache_hit, second.cache_hit) == (False, True) and first.path == second.path
    tokens, pooled = second.lookup(texts[0])
    assert torch.equal(tokens, first.lookup(texts[0])[0]) and pooled.shape == (384,)
    assert torch.allclose(pooled, tokens.mean(0), atol=1e-5)
    other = TranscriptEmbeddings.load_or_compute(texts, None, 16, str(tmp_path), log=lambda m: None)
    assert not other.cache_hit  # other settings, other key
    assert len(os.listdir(tmp_path)) == 2


def test_clear_errors():
    with pytest.raises(
        ValueError,
        match=r"^unknown guidance \['ouput'\]; pass 'none' or a comma-separated subset of output,intermediate,input,cmkt$",
    ):
        parse_guidance("ouput,input")
    assert parse_guidance("cmkt, output") == ("output", "cmkt") and parse_guidance("none") == ()
    with pytest.raises(ValueError, match="^some examples have an empty transcript; LLM guidance needs"):
        TranscriptEmbeddings.load_or_compute(["a", ""], None, 8, "/tmp/never")


def test_output_guidance_without_a_pslm_uses_the_offline_whisper(
    monkeypatch, random_whisper, tiny_corpus_path, cache_dir
):
    """`elegance-train --guidance output` without --pslm runs on the offline Whisper's encoder (the random Whisper
    stands in for it here, so that the test converts nothing) instead of failing."""
    from training.whisper_speech_encoder import WhisperSpeechEncoder

    asked = []
    monkeypatch.setattr("training.train.offline_whisper", lambda: asked.append(True) or random_whisper)
    model = make_run(tiny_corpus_path, cache_dir, "output")[0]
    assert asked == [True]
    assert isinstance(model.heads["output"].speech_encoder, WhisperSpeechEncoder)
    assert model.heads["output"].speech_encoder.hidden_size == 16


def test_hub_model_families_load_from_local_folders(tiny_corpus_path, cache_dir, tmp_path):
    """Causal LMs (Qwen3) for intermediate guidance and HuBERT as the PSLM, as users with the Hub would pass them."""
    from transformers import AutoTokenizer, HubertConfig, HubertModel, Qwen3Config, Qwen3ForCausalLM

    from processing.default_models import default_llm_path

    qwen = str(tmp_path / "qwen3")
    Qwen3ForCausalLM(
        Qwen3Config(
            vocab_size=30522,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
        )
    ).save_pretrained(qwen)
    AutoTokenizer.from_pretrained(default_llm_path()).save_pretrained(qwen)
    hubert = str(tmp_path / "hubert")
    HubertModel(
        HubertConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            conv_dim=(16,) * 7,
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=4,
        )
    ).save_pretrained(hubert)
    model, _, train, _, collator, _ = make_run(
        tiny_corpus_path, cache_dir, "output,intermediate,input", pslm=hubert, llm=qwen
    )
    assert model.backbone.config.prior_embedding_dim == 64
    assert not any(p.requires_grad for p in model.heads["intermediate"].language_model.parameters())  # nothing missing
    output = model.train()(**first_batch(train, collator, size=2))
    assert set(output.components) == {"extraction", "output", "intermediate"}
    assert all(torch.isfinite(value) for value in output.components.values())


def run_cli(args, tmp_path, name, extra=()):
    out = str(tmp_path / name)
    train_main(args + ["--output_dir", out, *extra])
    with open(os.path.join(out, "trainer_state.json")) as stream:
        return out, [entry for entry in json.load(stream)["log_history"] if "loss" in entry]


def cli_args(corpus, cache_dir, guidance="input,cmkt", backbone="usev-tiny", steps=4):
    return [
        "--backbone",
        backbone,
        "--data",
        corpus,
        "--guidance",
        guidance,
        "--max_steps",
        str(steps),
        "--logging_steps",
        "1",
        "--embedding_cache_dir",
        cache_dir,
        "--disable_tqdm",
        "true",
        "--eval_split",
        "none",
        "--per_device_train_batch_size",
        "2",
        "--seed",
        "1",
        "--use_cpu",
        "true",
    ]


def test_resume_continues_bit_for_bit(tiny_corpus_path, cache_dir, tmp_path):
    args = cli_args(tiny_corpus_path, cache_dir) + ["--save_steps", "2"]
    out, full = run_cli(args, tmp_path, "full")
    assert {"checkpoint-2", "checkpoint-4", "guidance-free"} <= set(os.listdir(out)) and ".staging" not in os.listdir(
        out
    )
    resumed_dir = str(tmp_path / "resumed")
    os.makedirs(resumed_dir)
    os.rename(os.path.join(out, "checkpoint-2"), os.path.join(resumed_dir, "checkpoint-2"))
    _, resumed = run_cli(args + ["--resume_from_checkpoint", "last"], tmp_path, "resumed")
    assert [entry["step"] for entry in resumed] == [1, 2, 3, 4]  # the first two come from the checkpoint's state
    for before, after in zip(full[2:], resumed[2:]):
        for key in ("loss", "loss_extraction", "loss_cmkt"):
            assert before[key] == after[key], (key, before, after)


def test_resuming_a_finished_run_trains_no_more_and_exports_the_same_model(tiny_corpus_path, cache_dir, tmp_path):
    args = cli_args(tiny_corpus_path, cache_dir, steps=2) + ["--save_steps", "2"]
    out, _ = run_cli(args, tmp_path, "finished")
    exported = safetensors.torch.load_file(os.path.join(out, "guidance-free", "model.safetensors"))
    shutil.rmtree(os.path.join(out, "guidance-free"))
    run_cli(args + ["--resume_from_checkpoint", "last"], tmp_path, "finished")
    assert sorted(name for name in os.listdir(out) if name.startswith("checkpoint-")) == ["checkpoint-2"]
    again = safetensors.torch.load_file(os.path.join(out, "guidance-free", "model.safetensors"))
    assert again.keys() == exported.keys() and all(torch.equal(again[name], exported[name]) for name in exported)


def test_an_interrupted_checkpoint_save_leaves_no_checkpoint(tiny_corpus_path, cache_dir, tmp_path, monkeypatch):
    from training.trainer import GuidanceTrainer

    def crash(self, output_dir):
        raise KeyboardInterrupt("killed while writing the optimizer")

    monkeypatch.setattr(GuidanceTrainer, "_save_optimizer_and_scheduler", crash)
    out = str(tmp_path / "crashed")
    with pytest.raises(KeyboardInterrupt):
        train_main(cli_args(tiny_corpus_path, cache_dir, steps=2) + ["--save_steps", "1", "--output_dir", out])
    from transformers.trainer_utils import get_last_checkpoint

    assert get_last_checkpoint(out) is None
    assert not any(name.startswith("checkpoint-") for name in os.listdir(out))


def test_guidance_free_export(tiny_corpus_path, cache_dir, tiny_pslm, tmp_path):
    out, _ = run_cli(
        cli_args(tiny_corpus_path, cache_dir, "output,intermediate,input,cmkt", steps=2) + ["--pslm", tiny_pslm],
        tmp_path,
        "all_heads",
        extra=["--save_strategy", "no"],
    )
    export = os.path.join(out, "guidance-free")
    model, info = AutoModel.from_pretrained(export, output_loading_info=True)
    assert all(not value for key, value in info.items() if key != "error_msgs")
    keys = list(safetensors.torch.load_file(os.path.join(export, "model.safetensors")))
    assert any(key.startswith("extractor.prior_fusion.") for key in keys)  # input guidance's fusion stays
    assert not any(
        word in key
        for key in keys
        for word in ("language_model", "speech_encoder", "adapter", "cross_attention", "cmkt")
    )
    trained = safetensors.torch.load_file(os.path.join(out, "model.safetensors"))
    assert set(keys) == {key[len("backbone.") :] for key in trained if key.startswith("backbone.")}
    processor = AutoProcessor.from_pretrained(export)
    assert processor.lip_feature_extractor.size == model.config.lip_roi_size
    # the export equals the trained backbone, and a second export over it is identical
    from training.release.export import load_trained_backbone

    backbone, _ = load_trained_backbone(out)
    inputs = probe_inputs(model.config)
    with torch.no_grad():
        assert torch.allclose(model.eval()(**inputs).waveform, backbone(**inputs).waveform, atol=1e-6)
    export_guidance_free(out, export)
    assert sorted(keys) == sorted(safetensors.torch.load_file(os.path.join(export, "model.safetensors")))


def test_export_of_a_folder_without_a_run_names_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no elegance training run: expected elegance_training.json"):
        export_guidance_free(str(tmp_path), str(tmp_path / "out"))


def test_two_processes_reach_the_loss_of_one_with_the_same_global_batch(tiny_corpus_path, cache_dir, tmp_path):
    """gloo data parallelism on CPU. The audio-only backbone has no batch norm, so the losses agree to float
    rounding; the audio-visual lip front-end's batch norm sees per-process statistics (see the README)."""
    base = cli_args(tiny_corpus_path, cache_dir, backbone="usev-se-tiny") + ["--save_strategy", "no"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    two = str(tmp_path / "two")
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        os.path.join(REPO, "training", "configs", "cpu_two_processes.yaml"),
        "--main_process_port",
        "29561",
        "-m",
        "training.train",
        *base,
        "--output_dir",
        two,
    ]
    subprocess.run(command, check=True, env=env, cwd=REPO, capture_output=True, timeout=600)
    one = base.copy()
    one[one.index("--per_device_train_batch_size") + 1] = "4"
    _, single = run_cli(one, tmp_path, "one")
    with open(os.path.join(two, "trainer_state.json")) as stream:
        double = [entry for entry in json.load(stream)["log_history"] if "loss" in entry]
    assert len(double) == len(single) == 4
    assert double[-1]["epoch"] == single[-1]["epoch"]  # both saw 4 global batches of 4
    for a, b in zip(single, double):
        for key in ("loss", "loss_extraction", "loss_cmkt"):
            assert abs(a[key] - b[key]) <= 1e-3 * abs(a[key]), (key, a, b)


def test_pool_frames_averages_real_frames_only():
    from training.heads.intermediate_guidance import pool_frames

    features = torch.arange(1.0, 8.0).view(1, 7, 1).repeat(2, 1, 2)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]])
    pooled, pooled_mask = pool_frames(features, mask, 4)
    assert pooled[0, :, 0].tolist() == [2.5, 6.0] and pooled_mask[0].tolist() == [1, 1]
    assert pooled[1, :, 0].tolist() == [2.5, 5.0] and pooled_mask[1].tolist() == [1, 1]
    pooled, pooled_mask = pool_frames(features[:, :5], torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]), 4)
    assert pooled[1, :, 0].tolist() == [2.0, 0.0] and pooled_mask.tolist() == [[1, 1], [1, 0]]


def test_output_guidance_refuses_a_batch_of_one(tiny_corpus_path, cache_dir, tiny_pslm):
    model, _, train, _, collator, _ = make_run(tiny_corpus_path, cache_dir, "output", pslm=tiny_pslm)
    with pytest.raises(
        ValueError,
        match=r"^output guidance needs at least 2 examples per device and step .*raise --per_device_train_batch_size$",
    ):
        model.train()(**first_batch(train, collator, size=1))
