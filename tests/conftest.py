import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest

from processing.corpus_generation import generate_corpus


@pytest.fixture(scope="session")
def tiny_corpus_path(tmp_path_factory):
    """The `tiny` corpus, generated once per test session with two workers."""
    path = str(tmp_path_factory.mktemp("corpus") / "tiny")
    generate_corpus(path, preset="tiny", seed=0, num_workers=2, log=lambda message: None)
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tiny_corpus_path):
    from datasets import load_from_disk

    return load_from_disk(tiny_corpus_path).with_format("numpy")


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory):
    """Freshly initialised usev-tiny and usev-se-tiny, saved with their processors (for the evaluation tests)."""
    import torch

    from modeling_elegance import MODEL_CLASSES, preset_config
    from processing import EleganceProcessor

    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for name in ("usev-tiny", "usev-se-tiny"):
        torch.manual_seed(0)
        config = preset_config(name)
        MODEL_CLASSES[type(config)](config).save_pretrained(folder / name)
        EleganceProcessor.from_defaults(lip_roi_size=config.lip_roi_size).save_pretrained(folder / name)
        paths[name] = str(folder / name)
    return paths


def tiny_random_whisper(folder: str, seed: int = 0) -> str:
    """A Whisper of the tiny.en vocabulary (its real tokenizer) with 2 + 2 layers of width 16, saved with its
    processor: what a user's Hub checkpoint looks like, small enough for the default suite."""
    import torch
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    from processing.default_models import whisper_ctranslate2_path

    tokenizer = WhisperTokenizerFast(tokenizer_file=os.path.join(whisper_ctranslate2_path(), "tokenizer.json"))
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        d_model=16,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_target_positions=64,
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # k has no bias in Whisper; give every other bias a value so that a mix-up shows
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.normal_()
    model.generation_config.no_timestamps_token_id = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    model.generation_config.is_multilingual = False
    model.generation_config.max_length = 12
    model.save_pretrained(folder)
    WhisperProcessor(WhisperFeatureExtractor(), tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def random_whisper(tmp_path_factory) -> str:
    return tiny_random_whisper(str(tmp_path_factory.mktemp("whisper") / "tiny-random"))


BLOCK_THE_PACKAGE = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("modeling_elegance", "processing", "training"):
            raise ImportError(f"{name} is blocked: the package is not installed here")
sys.meta_path.insert(0, Block())
"""


def run_without_the_package(script: str, tmp_path):
    """Run ``script`` in a fresh Python in which this package cannot be imported (what a user of a Hub folder with
    ``trust_remote_code=True`` has); returns the finished process."""
    import subprocess
    import sys

    environment = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", BLOCK_THE_PACKAGE + script],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def tiny_causal_lm(kind: str, folder: str) -> str:
    """A random Qwen3 or Llama of the offline MiniLM's vocabulary, saved with that tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    from processing.default_models import default_llm_path

    tokenizer = AutoTokenizer.from_pretrained(default_llm_path())
    shape = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    heads = dict(num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    torch.manual_seed(0)
    model = (
        Qwen3ForCausalLM(Qwen3Config(**shape, **heads))
        if kind == "qwen3"
        else LlamaForCausalLM(LlamaConfig(**shape, **heads))
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
