"""`elegance-train` (also ``python -m training.train``): train a backbone with any combination of LLM guidance.

    elegance-train --backbone usev-tiny --data data/default --guidance output,input --output_dir runs/usev \
        [--llm NAME_OR_PATH] [--pslm NAME_OR_PATH] [any transformers.TrainingArguments flag]

Works under ``accelerate launch`` (configs in ``training/configs/``). At the end the guidance-free model is
exported to ``--export_dir`` (default ``OUTPUT_DIR/guidance-free``).
"""

from __future__ import annotations

import os
import sys

from transformers import AutoModel, HfArgumentParser, TrainingArguments, set_seed

from modeling_elegance import MODEL_CLASSES, PRESETS, preset_config
from processing import EleganceProcessor
from processing.noise import NOISY_TRAIN_SNR_RANGE_DB

from .arguments import GuidanceArguments
from .data import GuidanceCollator, GuidanceDataset, lip_clips, load_split, transcripts_of
from .dynamic_mixing import DynamicMixer
from .guided_model import GuidedModel
from .heads import CrossModalKnowledgeTransferHead, InputGuidanceHead, IntermediateGuidanceHead, OutputGuidanceHead
from .language_model import load_causal_language_model, resolve_llm, text_encoder_width
from .lip_embedding_cache import LipEmbeddings
from .offline_whisper import offline_whisper
from .speech_encoder import SpeechEncoder
from .staged_folder import resolve_resume
from .trainer import GuidanceTrainer
from .transcript_embedding_cache import TranscriptEmbeddings

# defaults of TrainingArguments that suit this package (every one can be overridden on the command line); the
# learning rate and its schedule are the recipe chosen by the runs of docs/training-recipe.md
TRAINING_DEFAULTS = dict(
    remove_unused_columns=False,  # the collator reads the corpus columns
    label_names=["labels"],
    report_to="none",
    learning_rate=2e-3,
    lr_scheduler_type="cosine",
    warmup_steps=200,
    per_device_train_batch_size=4,
    per_device_eval_batch_size=4,
    logging_steps=10,
    save_steps=200,
    save_total_limit=3,
    dataloader_num_workers=0,
    ddp_find_unused_parameters=False,
    max_grad_norm=5.0,
)


def build_backbone(args: GuidanceArguments, llm_width: int | None):
    """The backbone: a preset (with a prior fusion of ``llm_width`` when input guidance is on) or a saved model."""
    wants_prior = "input" in args.heads
    if args.backbone in PRESETS:
        overrides = parse_config_overrides(args.backbone, args.config_overrides)
        config = preset_config(
            args.backbone,
            prior_embedding_dim=llm_width if wants_prior else None,
            lip_encoder=args.lip_encoder,
            **overrides,
        )
        return freeze_lip_encoder(MODEL_CLASSES[type(config)](config), args)
    if not os.path.isdir(args.backbone):
        raise ValueError(
            f"--backbone {args.backbone!r} is neither a preset ({', '.join(PRESETS)}) nor a saved model folder"
        )
    if args.config_overrides:
        raise ValueError(
            f"--config_overrides applies to a backbone built from a preset; {args.backbone} is a saved model whose "
            f"config is fixed by its weights"
        )
    if args.lip_encoder is not None:
        raise ValueError(
            f"--lip_encoder applies to a backbone built from a preset; {args.backbone} is a saved model that already "
            f"holds its lip encoder"
        )
    model = freeze_lip_encoder(AutoModel.from_pretrained(args.backbone), args)
    if wants_prior and model.config.prior_embedding_dim != llm_width:
        raise ValueError(
            f"{args.backbone} has prior_embedding_dim={model.config.prior_embedding_dim} but input guidance with "
            f"this LLM needs {llm_width}; start from a preset, or from a model trained with the same LLM"
        )
    return model


def parse_config_overrides(preset: str, text: str | None) -> dict:
    """``"encoder_channels=256,encoder_kernel_size=40"`` -> ``{"encoder_channels": 256, "encoder_kernel_size": 40}``,
    each value of the type the preset's field has (parsed by ``PretrainedConfig.update_from_string``)."""
    if not text:
        return {}
    pairs = [item.split("=", 1) for item in text.split(",")]
    if any(len(pair) != 2 or not pair[0].strip() for pair in pairs):
        raise ValueError(
            f"--config_overrides {text!r}: write comma-separated name=value pairs, e.g. 'encoder_channels=256'"
        )
    probe = preset_config(preset)
    unknown = [name for name, _ in pairs if not hasattr(probe, name)]
    if unknown:
        raise ValueError(f"--config_overrides: {preset} has no config field {', '.join(unknown)}")
    for name, value in pairs:
        kind = type(getattr(probe, name)).__name__
        try:
            probe.update_from_string(f"{name}={value}")
        except (TypeError, ValueError):
            raise ValueError(f"--config_overrides: {name} must be of type {kind}, got {value!r}") from None
    return {name: getattr(probe, name) for name, _ in pairs}


def freeze_lip_encoder(backbone, args: GuidanceArguments):
    """With ``--lip_encoder`` and ``--freeze_lip_encoder``, the backbone's lip encoder gets no gradient."""
    if args.lip_encoder is not None and args.freeze_lip_encoder:
        backbone.visual_encoder.lip_encoder.requires_grad_(False)
    return backbone


def lip_encoder_is_frozen(backbone) -> bool:
    encoder = getattr(getattr(backbone, "visual_encoder", None), "lip_encoder", None)
    return encoder is not None and not any(parameter.requires_grad for parameter in encoder.parameters())


def build_heads(args: GuidanceArguments, backbone, llm_width: int | None):
    """The enabled heads and their loss weights (CMKT: ``a`` on the extraction loss, ``1 - a`` on its own)."""
    heads, weights, extraction_weight = [], {}, 1.0
    channels = backbone.config.bottleneck_channels
    if "output" in args.heads:
        pslm = args.pslm or offline_whisper()  # the offline Whisper tiny.en, converted on first use
        heads.append(OutputGuidanceHead(SpeechEncoder.from_pretrained(pslm), llm_width, args.adapter_dim))
        weights["output"] = args.output_weight
    if "intermediate" in args.heads:
        language_model, _, _ = load_causal_language_model(args.llm)
        heads.append(
            IntermediateGuidanceHead(
                language_model,
                channels,
                args.intermediate_num_heads,
                args.intermediate_alpha,
                args.llm_lora_rank,
                args.intermediate_memory_stride,
            )
        )
        weights["intermediate"] = args.intermediate_weight
    if "input" in args.heads:
        heads.append(InputGuidanceHead())
    if "cmkt" in args.heads:
        heads.append(CrossModalKnowledgeTransferHead(channels, llm_width))
        weights["cmkt"], extraction_weight = 1.0 - args.cmkt_alpha, args.cmkt_alpha
    return heads, weights, extraction_weight


def parse_snr_range(text: str) -> tuple[float, float] | None:
    """``"LOW,HIGH"`` in dB -> ``(low, high)``; ``"none"`` -> None."""
    if text.strip().lower() == "none":
        return None
    try:
        low, high = (float(value) for value in text.split(","))
    except ValueError:
        raise ValueError(f"--dynamic_noise_snr_db takes LOW,HIGH in dB (e.g. -5,15) or none, got {text!r}") from None
    if low > high:
        raise ValueError(f"--dynamic_noise_snr_db takes LOW,HIGH with LOW <= HIGH, got {text!r}")
    return low, high


def holds_noise(dataset) -> bool:
    """Whether ``dataset`` is speech in noise (a `*_noisy` split of the corpus)."""
    columns = getattr(dataset, "column_names", None) or []
    return "noise_type" in columns and any(kind != "none" for kind in dataset["noise_type"])


def build_mixer(args: GuidanceArguments, train_data) -> DynamicMixer:
    """Dynamic mixing as the training split calls for: talkers (1 interferer) for a split of talker mixtures,
    noise alone at -5 to 15 dB SNR for a split in noise; ``--num_interferers`` and ``--dynamic_noise_snr_db``
    override either."""
    noisy = holds_noise(train_data)
    if args.dynamic_noise_snr_db is not None:
        snr_range = parse_snr_range(args.dynamic_noise_snr_db)
    else:
        snr_range = NOISY_TRAIN_SNR_RANGE_DB if noisy else None
    num_interferers = args.num_interferers if args.num_interferers is not None else (0 if noisy else 1)
    return DynamicMixer(
        train_data, num_interferers, noise_snr_range_db=snr_range, pitch_matched_share=args.pitch_matched_share
    )


def build_run(args: GuidanceArguments, training_args: TrainingArguments, log=print):
    """Everything a run needs: ``(guided model, processor, train dataset, eval dataset, collator, record)``."""
    heads_need_embeddings = bool({"output", "input", "cmkt"} & set(args.heads))
    llm_width = text_encoder_width(args.llm) if args.heads else None
    backbone = build_backbone(args, llm_width)
    config = backbone.config
    processor = EleganceProcessor.from_defaults(
        resolve_llm(args.llm), sampling_rate=config.sampling_rate, fps=config.fps, lip_roi_size=config.lip_roi_size
    )
    train_data = load_split(args.data, args.train_split, args.audio_root, args.visual_root, args.max_train_examples)
    eval_data = None
    if args.eval_split:
        eval_data = load_split(args.data, args.eval_split, args.audio_root, args.visual_root, args.max_eval_examples)
    embeddings = None
    if heads_need_embeddings:
        texts = transcripts_of(train_data) + (transcripts_of(eval_data) if eval_data is not None else [])
        with training_args.main_process_first(desc="LLM embeddings of the transcripts"):
            embeddings = TranscriptEmbeddings.load_or_compute(
                texts, args.llm, args.max_text_tokens, args.embedding_cache_dir, log=log
            )
    heads, weights, extraction_weight = build_heads(args, backbone, llm_width)
    model = GuidedModel(backbone, heads, weights, extraction_weight)
    lip_embeddings = None
    if lip_encoder_is_frozen(backbone):
        with training_args.main_process_first(desc="lip embeddings of the clean clips"):
            lip_embeddings = LipEmbeddings(backbone.visual_encoder.lip_encoder, processor.lip_feature_extractor)
            clips = lip_clips(train_data) + (lip_clips(eval_data) if eval_data is not None else [])
            lip_embeddings.load_or_compute(clips, args.embedding_cache_dir, log=log)
    mixer = build_mixer(args, train_data) if args.dynamic_mixing else None
    draws = dict(input_probability=args.input_probability, max_shift=args.cmkt_max_shift)
    train_dataset = GuidanceDataset(
        train_data,
        True,
        training_args.seed,
        args.impair_visual,
        impair_probability=args.impair_probability,
        mixer=mixer,
        **draws,
    )
    eval_dataset = None if eval_data is None else GuidanceDataset(eval_data, False, training_args.seed, **draws)
    collator = GuidanceCollator(
        processor,
        uses_lips=config.lip_input is not None,
        embeddings=embeddings,
        tokenizer=processor.tokenizer if "intermediate" in args.heads else None,
        max_text_tokens=args.max_text_tokens,
        lip_embeddings=lip_embeddings,
    )
    record = {"backbone_model_type": config.model_type, "backbone_config": config.to_dict(), "guidance": args.to_dict()}
    return model, processor, train_dataset, eval_dataset, collator, record


def parse_arguments(argv=None) -> tuple[GuidanceArguments, TrainingArguments]:
    parser = HfArgumentParser((GuidanceArguments, TrainingArguments))
    parser.set_defaults(**TRAINING_DEFAULTS)
    return parser.parse_args_into_dataclasses(args=argv)


def main(argv=None) -> int:
    args, training_args = parse_arguments(argv)
    if training_args.eval_strategy != "no" and not args.eval_split:
        raise ValueError("--eval_strategy needs an --eval_split")
    set_seed(training_args.seed)  # the initial weights are a function of --seed
    model, processor, train_dataset, eval_dataset, collator, record = build_run(args, training_args)
    trainer = GuidanceTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if training_args.eval_strategy != "no" else None,
        data_collator=collator,
        processing_class=processor,
        training_record=record,
    )
    trainer.train(resume_from_checkpoint=resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir))
    trainer.save_model(training_args.output_dir)
    trainer.save_state()  # trainer_state.json with the log history
    if trainer.is_world_process_zero():
        from .release.export import export_guidance_free

        export_dir = args.export_dir or os.path.join(training_args.output_dir, "guidance-free")
        export_guidance_free(training_args.output_dir, export_dir)
        print(f"guidance-free model written to {export_dir}")
    trainer.accelerator.wait_for_everyone()
    return 0


if __name__ == "__main__":
    sys.exit(main())
