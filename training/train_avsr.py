"""`elegance-train-avsr`: AVUR-LLM's first stage (Whisper + sparse modality alignment + adaptive modulated fusion)
trained on a corpus's clean and noisy speech with its lips.

    elegance-train-avsr --data DATA --output_dir runs/avsr [--whisper NAME_OR_DIR] [--lip_reader DIR]
        [--train_splits train,train_noisy] [--eval_split validation_noisy] [--fusion_modulation none]
        [--whisper_lora_rank 8] [--audio_only] [any transformers.TrainingArguments flag]

Whisper (default: the offline tiny.en) and the lip reader's encoder (default: the shipped `pretrained/lip-reader`)
stay frozen; the alignment blocks, the visual projection and the fusion train. ``--whisper_lora_rank R`` adds LoRA
to Whisper's decoder (:mod:`training.whisper_lora`; merged into the weights at export). ``--audio_only`` trains
that LoRA alone on the audio, without lips: the audio-only baseline fine-tuned with the same data and steps.
``--fusion_modulation none`` is the ablation without AMF (SMA's visual stream through a plain gate).
``--fusion_auxiliary_weight W`` adds the open-gate loss (not in the paper): the closed gate sends the visual read no
gradient, and this loss trains the read meanwhile. Each example is the split's speech
as a recogniser would hear it: the mixture of a split in noise (target + noise), the clean target of a split of
talker mixtures. Checkpoints hold only the trained weights and are written atomically (the extraction trainer's
`GuidanceTrainer`); ``--resume_from_checkpoint last`` continues a run. The trained model and its processor are
written to ``OUTPUT_DIR/avsr``, whole or not at all (`AutoModel.from_pretrained` loads it).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import HfArgumentParser, TrainingArguments

from hub_cards import render_recognition_card
from modeling_elegance import AvurConfig, AvurForConditionalGeneration
from processing import AvurProcessor

from .data import load_split
from .guided_model import GuidedOutput
from .staged_folder import resolve_resume, staged_folder
from .trainer import GuidanceTrainer
from .transcript_embedding_cache import default_cache_dir
from .whisper_lora import add_decoder_lora, merge_lora
from .whisper_state_cache import WhisperStateCache

# what the model takes pretrained (frozen, but for Whisper's LoRA); the rest of it is the new visual path
PRETRAINED_PARTS = ("model.whisper.", "model.lip_encoder.")

# elegance-train-avsr's TrainingArguments defaults (the recognition benchmark's schedule and batch)
TRAINING_DEFAULTS = dict(
    max_steps=1000,
    learning_rate=5e-4,
    warmup_steps=50,
    lr_scheduler_type="cosine",
    per_device_train_batch_size=8,
    logging_steps=25,
    save_steps=250,
    save_total_limit=2,
    report_to="none",
    remove_unused_columns=False,
    eval_strategy="no",
)

SHIPPED_LIP_READER = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pretrained", "lip-reader"
)


def parse_sma_layers(text: str | None) -> list[int] | None:
    """``--sma_layers``: None (the config's default, the upper half), ``"none"`` (``[]``: no alignment block) or
    comma-separated encoder layer indices."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return []
    try:
        return [int(index) for index in text.split(",")]
    except ValueError:
        raise ValueError(
            f"--sma_layers must be comma-separated Whisper encoder layer indices (e.g. '2,3') or 'none', got {text!r}"
        ) from None


@dataclass
class AvsrArguments:
    data: str = field(metadata={"help": "a corpus folder written by elegance-data"})
    whisper: str | None = field(
        default=None,
        metadata={
            "help": "Whisper name or folder (default: offline tiny.en), or a recogniser folder of an earlier run "
            "(OUTPUT_DIR/avsr, e.g. the fine-tuned audio-only baseline): its Whisper, LoRA merged"
        },
    )
    lip_reader: str | None = field(
        default=None, metadata={"help": "lip reader folder (elegance-pretrain-lips; default: pretrained/lip-reader)"}
    )
    train_splits: str = field(default="train,train_noisy", metadata={"help": "comma-separated training splits"})
    eval_split: str | None = field(default="validation_noisy", metadata={"help": "'none' for no evaluation split"})
    sma_layers: str | None = field(
        default=None,
        metadata={"help": "Whisper encoder layers, e.g. '2,3' (default: upper half); 'none': no alignment block"},
    )
    modality_dropout: float = field(default=0.3, metadata={"help": "share of training examples without lips"})
    fusion_modulation: str = field(
        default="reliability",
        metadata={"help": "'reliability' (AMF) or 'none' (the ablation: the visual stream through a plain gate)"},
    )
    fusion_read: str = field(
        default="attention",
        metadata={
            "help": "'attention' (a learned cross-attention to the lips) or 'aligned' (the lips where the probe listens)"
        },
    )
    fusion_auxiliary_weight: float = field(
        default=0.0,
        metadata={
            "help": "weight of the open-gate loss: the next-token loss with the visual injection at full strength, "
            "which trains the visual read while the fusion gate is still closed (not in the paper; 0: off)"
        },
    )
    fusion_layer: int | None = field(
        default=None,
        metadata={
            "help": "inject the visual read after this decoder layer, so later layers can use it (AvurConfig."
            "fusion_layer; default: after the whole decoder)"
        },
    )
    sma_output_norm: bool = field(
        default=False,
        metadata={
            "help": "normalise what each alignment block adds to the visual stream, so the audio it reads cannot "
            "drown the visual content (AvurConfig.sma_output_norm; not in the paper)"
        },
    )
    freeze_acoustic_probe: bool = field(
        default=False,
        metadata={
            "help": "keep AMF's acoustic probe at Whisper's cross-attention it starts from (trained, it sharpens "
            "until the unreliability that scales the visual injection is near 0; docs/results.md)"
        },
    )
    whisper_lora_rank: int = field(default=0, metadata={"help": "LoRA rank on Whisper's decoder (0: frozen)"})
    visual_lr_scale: float = field(
        default=1.0,
        metadata={
            "help": "learning rate of the visual path (projection, alignment, fusion) as a multiple of --learning_rate "
            "(the fusion gate starts closed, and opens only as fast as its learning rate lets it)"
        },
    )
    audio_only: bool = field(
        default=False,
        metadata={"help": "train Whisper's decoder LoRA alone, without lips (the fine-tuned audio-only baseline)"},
    )
    cache_audio_states: bool = field(
        default=True,
        metadata={
            "help": "encode each clip by the frozen Whisper once and keep its states on disk (whisper_state_cache)"
        },
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "where the cached states go (default: package cache)"}
    )

    def __post_init__(self):
        if self.eval_split in ("", "none"):
            self.eval_split = None
        if self.visual_lr_scale <= 0:
            raise ValueError(f"--visual_lr_scale must be positive, got {self.visual_lr_scale}")
        if self.audio_only and self.whisper_lora_rank < 1:
            raise ValueError(
                "--audio_only trains Whisper's decoder LoRA and nothing else: give it --whisper_lora_rank (e.g. 8)"
            )


class RecognitionRun(nn.Module):
    """The AV recogniser as `GuidanceTrainer` trains it: its loss as the one component ``recognition``, and
    checkpoints of what trains (not the frozen Whisper or lip encoder)."""

    def __init__(self, model: AvurForConditionalGeneration):
        super().__init__()
        self.model = model
        self.main_input_name = model.main_input_name

    def forward(self, **batch) -> GuidedOutput:
        output = self.model(**batch)
        components = {"recognition": output.loss.detach()}
        if output.auxiliary_loss is not None:  # the open-gate loss, inside output.loss with its weight: log each apart
            auxiliary = output.auxiliary_loss.detach()
            components = {
                "recognition": components["recognition"] - self.model.config.fusion_auxiliary_weight * auxiliary,
                "open_gate": auxiliary,
            }
        return GuidedOutput(loss=output.loss, components=components)

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        trainable = {name for name, parameter in self.named_parameters() if parameter.requires_grad}
        return {
            name: t
            for name, t in self.state_dict().items()
            if not name.startswith(PRETRAINED_PARTS) or name in trainable
        }

    def load_checkpoint_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        expected = set(self.checkpoint_state_dict())
        if expected != set(state_dict):
            raise ValueError(
                f"the checkpoint does not match this model ({len(expected ^ set(state_dict))} names differ); resume "
                "with the same --whisper, --lip_reader, --sma_layers and --whisper_lora_rank as the run that wrote it"
            )
        self.load_state_dict(state_dict, strict=False)


def recognition_speech(example: dict):
    """The speech a recogniser hears in a corpus example: the mixture of a split in noise, the clean target of a
    split of talker mixtures (whose mixture holds another talker)."""
    return example["mixture"] if str(example.get("noise_type", "none")) != "none" else example["target"]


class RecognitionCollator:
    """Corpus examples -> the processor's ``input_features``, ``attention_mask``, ``lip_frames``,
    ``video_attention_mask`` and ``labels``; with ``audio_states`` (a :class:`WhisperStateCache`), the frozen
    encoder's cached ``audio_states`` instead of ``input_features``."""

    def __init__(self, processor: AvurProcessor, audio_states: WhisperStateCache | None = None, lips: bool = True):
        self.processor, self.audio_states, self.lips = processor, audio_states, lips

    def __call__(self, examples):
        speech = [recognition_speech(example) for example in examples]
        batch = dict(
            self.processor(
                audio=speech,
                videos=[example["lips"] for example in examples],
                text=[str(example["transcript"]) for example in examples],
                return_tensors="pt",
                audio_features=self.audio_states is None,  # the cache computes features only for clips it lacks
            )
        )
        if self.audio_states is not None:
            batch["audio_states"] = self.audio_states(speech)
        if not self.lips:  # the audio-only baseline hears the clip alone
            batch.pop("lip_frames", None)
            batch.pop("video_attention_mask", None)
        return batch


def is_recogniser_folder(path: str) -> bool:
    config = os.path.join(path, "config.json")
    if not os.path.isfile(config):
        return False
    with open(config) as stream:
        return json.load(stream).get("model_type") == AvurConfig.model_type


@contextmanager
def whisper_checkpoint(name_or_path: str):
    """``--whisper`` as a Whisper checkpoint for the block: a Hub name or Whisper folder as it is; a recogniser
    folder (``OUTPUT_DIR/avsr`` of an earlier run, LoRA merged) as its Whisper (weights, generation config, feature
    extractor and tokenizer), written to a temporary folder. So the lips can be trained on a fine-tuned Whisper: the
    audio-only baseline first, then the visual path on top of it with Whisper frozen."""
    if not is_recogniser_folder(name_or_path):
        yield name_or_path
        return
    recogniser = AvurForConditionalGeneration.from_pretrained(name_or_path)
    processor = AvurProcessor.from_pretrained(name_or_path)
    with tempfile.TemporaryDirectory(prefix="whisper-of-recogniser-") as folder:
        recogniser.whisper.save_pretrained(folder)
        processor.feature_extractor.save_pretrained(folder)
        processor.tokenizer.save_pretrained(folder)
        yield folder


def build_recognition_run(args: AvsrArguments):
    """``(run, processor, train dataset, eval dataset)``."""
    from datasets import concatenate_datasets

    from .offline_whisper import offline_whisper

    lip_reader = args.lip_reader or SHIPPED_LIP_READER
    sma_layers = parse_sma_layers(args.sma_layers)
    with whisper_checkpoint(args.whisper or offline_whisper()) as whisper:
        model = AvurForConditionalGeneration.from_whisper(
            whisper,
            lip_reader=lip_reader,
            sma_layers=sma_layers,
            modality_dropout=args.modality_dropout,
            fusion_modulation=args.fusion_modulation,
            fusion_read=args.fusion_read,
            fusion_auxiliary_weight=args.fusion_auxiliary_weight,
            sma_output_norm=args.sma_output_norm,
            fusion_layer=args.fusion_layer,
        )
        processor = AvurProcessor.from_whisper(whisper, lip_roi_size=model.config.lip_roi_size)
    # the audio-only baseline trains nothing visual: its fusion gate stays closed, so its visual path is a no-op
    for parameter in (
        model.parameters() if args.audio_only else [*model.whisper.parameters(), *model.lip_encoder.parameters()]
    ):
        parameter.requires_grad_(False)
    if args.freeze_acoustic_probe:
        model.fusion.freeze_probe()
    if args.whisper_lora_rank:
        add_decoder_lora(model.whisper, args.whisper_lora_rank)
    splits = [load_split(args.data, split.strip()) for split in args.train_splits.split(",") if split.strip()]
    train = concatenate_datasets([recognition_columns(split) for split in splits])
    evaluation = recognition_columns(load_split(args.data, args.eval_split)) if args.eval_split else None
    return RecognitionRun(model), processor, train, evaluation


def recognition_columns(split):
    """The columns recognition reads. A split written before corpora had a ``noise_type`` column (talker mixtures,
    no noise) gets it as "none", so that it concatenates with the splits in noise."""
    if "noise_type" not in split.column_names:
        split = split.add_column("noise_type", ["none"] * len(split))
    return split.select_columns(["mixture", "target", "lips", "transcript", "noise_type"])


def visual_path_optimizer(run: RecognitionRun, training_args: TrainingArguments, scale: float):
    """AdamW (the Trainer's settings) with the visual path's parameters at ``scale`` times the learning rate, or None
    (the Trainer's own optimizer) at scale 1. Whisper's LoRA keeps the base rate."""
    if scale == 1.0:
        return None
    trainable = [(name, p) for name, p in run.named_parameters() if p.requires_grad]
    visual = [p for name, p in trainable if not name.startswith(PRETRAINED_PARTS)]
    pretrained = [p for name, p in trainable if name.startswith(PRETRAINED_PARTS)]  # Whisper's LoRA
    groups = [{"params": visual, "lr": training_args.learning_rate * scale}, {"params": pretrained}]
    return torch.optim.AdamW(
        [group for group in groups if group["params"]],
        lr=training_args.learning_rate,
        betas=(training_args.adam_beta1, training_args.adam_beta2),
        eps=training_args.adam_epsilon,
        weight_decay=training_args.weight_decay,
    )


def train_recognizer(args: AvsrArguments, training_args: TrainingArguments, log=print) -> str:
    """Train; returns the folder of the trained model and processor."""
    run, processor, train, evaluation = build_recognition_run(args)
    audio_states = None
    if args.cache_audio_states:
        audio_states = WhisperStateCache(run.model, processor.feature_extractor, args.cache_dir or default_cache_dir())
        log(f"Whisper encoder states cached in {audio_states.folder}")
    trainer = GuidanceTrainer(
        optimizers=(visual_path_optimizer(run, training_args, args.visual_lr_scale), None),
        model=run,
        args=training_args,
        train_dataset=train,
        eval_dataset=evaluation if training_args.eval_strategy != "no" else None,
        data_collator=RecognitionCollator(processor, audio_states, lips=not args.audio_only),
        training_record={"avsr": {key: value for key, value in vars(args).items()}},
    )
    trainer.train(
        resume_from_checkpoint=resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir, log)
    )
    final = os.path.join(training_args.output_dir, "avsr")
    if trainer.args.should_save:
        card = render_recognition_card(
            run.model.config, steps=trainer.state.global_step, training=vars(args), model_name="avsr"
        )
        merge_lora(run.model.whisper)  # a plain model: the adapters folded into Whisper's weights
        with staged_folder(final) as staging:
            run.model.save_pretrained(staging)
            processor.save_pretrained(staging)
            card.save(os.path.join(staging, "README.md"))
    return final


def main(argv=None) -> int:
    parser = HfArgumentParser((AvsrArguments, TrainingArguments))
    parser.set_defaults(**TRAINING_DEFAULTS)
    args, training_args = parser.parse_args_into_dataclasses(args=argv)
    torch.manual_seed(training_args.seed)
    final = train_recognizer(args, training_args)
    print(f"AV recogniser written to {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
