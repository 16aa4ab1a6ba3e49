"""Loading the guidance LLM: as a frozen text encoder (embeddings) and as a next-token predictor.

Any Hugging Face language model works by name or path: causal LMs (Qwen3, Llama, GPT-2 families) as they are, and
masked encoders (BERT, RoBERTa) as causal decoders (``is_decoder=True``), which is how the ELEGANCE authors used
RoBERTa. Weights a checkpoint lacks (e.g. the LM head of a sentence-embedding MiniLM) are newly initialised and
left trainable; everything the checkpoint holds is frozen.
"""

from __future__ import annotations

import hashlib
import json
import os

import torch
from torch import nn
from transformers.utils import logging

from processing.default_models import default_llm_path


def resolve_llm(name_or_path: str | None) -> str:
    """``None`` -> the offline MiniLM's folder; anything else unchanged."""
    return name_or_path or default_llm_path()


def model_fingerprint(name_or_path: str) -> str:
    """A short hash that changes when a local model's config or weights change (name only for Hub ids)."""
    digest = hashlib.sha256(name_or_path.encode())
    if os.path.isdir(name_or_path):
        for name in sorted(os.listdir(name_or_path)):
            path = os.path.join(name_or_path, name)
            if name == "config.json":
                with open(path, "rb") as stream:
                    digest.update(stream.read())
            elif name.endswith((".safetensors", ".bin")):
                size = os.path.getsize(path)
                with open(path, "rb") as stream:
                    digest.update(f"{name}:{size}".encode() + stream.read(1 << 20))
                    stream.seek(max(size - (1 << 20), 0))
                    digest.update(stream.read())
    return digest.hexdigest()[:16]


def freeze(model: nn.Module, keep_trainable: set[str] = frozenset()) -> nn.Module:
    """``requires_grad=False`` on every parameter except those named in ``keep_trainable``."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in keep_trainable)
    return model


def load_text_encoder(name_or_path: str | None):
    """The frozen LLM as a text encoder, in eval mode, and its tokenizer: ``(model, tokenizer)``."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_llm(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, dtype=torch.float32)
    return freeze(model).eval(), tokenizer


def load_causal_language_model(name_or_path: str | None):
    """The LLM with an LM head for next-token prediction: ``(model, tokenizer, newly_initialised_names)``.

    Masked encoders are loaded as causal decoders. Parameters missing from the checkpoint stay trainable; the rest
    is frozen.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = resolve_llm(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = AutoConfig.from_pretrained(path)
    config.is_decoder = True  # a no-op for causal LMs; turns BERT/RoBERTa self-attention causal
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # its load report lists the missing LM head as an alarm; we say it once, below
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            path, config=config, dtype=torch.float32, output_loading_info=True
        )
    except ValueError as error:
        raise ValueError(
            f"{path} ({config.model_type}) has no language-modelling head class in transformers; intermediate "
            f"guidance needs a causal LM (Qwen3, Llama, GPT-2) or a BERT/RoBERTa-like encoder"
        ) from error
    finally:
        logging.set_verbosity(verbosity)
    # tied weights (e.g. a decoder tied to the input embeddings) come from the checkpoint: keep them frozen
    new = sorted(set(info["missing_keys"]) & {name for name, _ in model.named_parameters()})
    if new:
        print(f"{path}: {len(new)} weights not in the checkpoint are newly initialised and trained ({', '.join(new)})")
    return freeze(model, set(new)), tokenizer, new


def find_decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks of any HF language model: the ModuleList of ``num_hidden_layers`` blocks
    of one class (``model.layers`` for Llama/Qwen, ``encoder.layer`` for BERT, ``transformer.h`` for GPT-2)."""
    depth = getattr(model.config, "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0 and (depth is None or len(module) == depth):
            if len({type(block) for block in module}) == 1 and "lora" not in name:
                return module
    raise ValueError(
        f"could not find the decoder-layer stack of {type(model).__name__}: no ModuleList of {depth} identical "
        f"blocks; intermediate guidance needs a standard Hugging Face transformer"
    )


def tokenize_transcripts(tokenizer, texts: list[str], max_tokens: int) -> dict:
    """Padded ``input_ids`` and ``attention_mask`` (torch tensors), cut to ``max_tokens``. Tokenizers without a
    pad token (GPT-2, Llama) pad with their end-of-sequence token."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"the tokenizer of {tokenizer.name_or_path} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")


def text_encoder_width(name_or_path: str | None) -> int:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolve_llm(name_or_path))
    width = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None)
    if width is None:
        raise ValueError(f"cannot read the hidden size of {name_or_path}: {json.dumps(config.to_dict())[:200]}")
    return int(width)
