"""LoRA (`peft`) on the Whisper decoder of an AV recogniser, and its merge into plain weights for export.

Only the decoder's linear layers take adapters: the encoder stays frozen, so its states stay a function of the audio
alone and :mod:`training.whisper_state_cache` keeps serving them. The adapters train with whatever else trains (the
alignment and fusion blocks, or nothing else for the audio-only baseline, ``elegance-train-avsr --audio_only``);
at export :func:`merge_lora` folds them into the base weights, so the saved model is a plain
`AvurForConditionalGeneration` that loads without `peft`.
"""

from __future__ import annotations

from torch import nn

# every projection of the decoder's self- and cross-attention, and its feed-forward
DECODER_LORA_TARGETS = (
    r"model\.decoder\.layers\.\d+\.((self_attn|encoder_attn)\.(q_proj|k_proj|v_proj|out_proj)|fc1|fc2)"
)


def add_decoder_lora(whisper: nn.Module, rank: int) -> list[str]:
    """Inject rank-``rank`` LoRA adapters (alpha = 2 x rank) into ``whisper`` (a `WhisperForConditionalGeneration`)
    in place; returns the names of the new trainable parameters. Whisper's own weights are left frozen."""
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1:
        raise ValueError(f"the LoRA rank must be at least 1, got {rank}")
    for parameter in whisper.parameters():
        parameter.requires_grad_(False)
    inject_adapter_in_model(
        LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=DECODER_LORA_TARGETS, lora_dropout=0.0), whisper
    )
    names = [name for name, _ in whisper.named_parameters() if "lora_" in name]
    for name, parameter in whisper.named_parameters():
        parameter.requires_grad_(name in names)
    return names


def merge_lora(module: nn.Module) -> int:
    """Fold every LoRA adapter inside ``module`` into its base layer and put the base layer back in its place;
    returns how many layers were merged. The module then computes what it computed with the adapters."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    adapted = [(name, child) for name, child in module.named_modules() if isinstance(child, BaseTunerLayer)]
    for name, layer in adapted:
        layer.merge()
        parent_name, _, attribute = name.rpartition(".")
        setattr(module.get_submodule(parent_name) if parent_name else module, attribute, layer.get_base_layer())
    return len(adapted)
