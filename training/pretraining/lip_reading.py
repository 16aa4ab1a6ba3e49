"""`elegance-pretrain-lips`: pretrain the backbones' lip encoder on lip reading, on a corpus's lip clips with its
phone timings as targets (per-frame phone classification).

Learning to read lips from scratch through the extraction loss is what kept the backbones near 0 dB: a lip encoder
pretrained this way gives the separator a visual stream that already says which phone the target is making. The
result is a plain Hugging Face folder (``LipReadingModel``, safetensors) that a backbone takes with
``preset_config(..., lip_encoder=DIR)`` or ``elegance-train --lip_encoder DIR``.

    elegance-pretrain-lips --data data/default --output_dir outputs/lips [--max_steps 1500] [TrainingArguments flags]

The folder is ``OUTPUT_DIR/lip-reader``; ``lip_reading_evaluation.json`` beside the weights gives frame accuracy
and phone error rate on ``--eval_split`` (``test``: speakers never seen in training) with the majority-class and
chance baselines.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import HfArgumentParser, TrainingArguments

from hub_cards.model_card import render_lip_reading_card
from modeling_elegance import LipReadingConfig, LipReadingModel
from modeling_elegance.configuration_lip_reading import SILENCE
from processing import LipVideoProcessor

from ..data import load_split
from ..evaluation.metrics import word_error_rate
from ..staged_folder import resolve_resume, staged_folder

STRESS_MARKS = "ˈˌ"  # espeak's stress marks: the lips do not show them


@dataclass
class LipPretrainingArguments:
    data: str = field(metadata={"help": "a corpus folder written by elegance-data (needs lips and phoneme_timings)"})
    train_split: str = field(default="train")
    eval_split: str | None = field(
        default="test", metadata={"help": "split scored at the end ('none' for none); test has unseen speakers"}
    )
    lip_frontend_width: int = field(default=8, metadata={"help": "channels of the front-end's first ResNet stage"})
    lip_embedding_dim: int = field(default=128, metadata={"help": "size of the per-frame embedding"})
    lip_temporal_layers: int = field(default=1, metadata={"help": "BiLSTM layers over the front-end"})

    def __post_init__(self):
        if self.eval_split in ("", "none"):
            self.eval_split = None


def phone_name(phoneme: str) -> str:
    return phoneme.strip(STRESS_MARKS) or SILENCE


def phone_vocabulary(timings_per_clip) -> list[str]:
    """The silence label, then every phone (stress marks removed) of the clips, sorted."""
    phones = {phone_name(str(entry["phoneme"])) for timings in timings_per_clip for entry in timings}
    return [SILENCE] + sorted(phones - {SILENCE})


def frame_labels(timings, num_frames: int, fps: float, vocabulary: dict[str, int]) -> np.ndarray:
    """``(num_frames,)`` class of the phone active at each frame's time ``k / fps``: silence where none is,
    -100 (not scored) for a phone outside the vocabulary."""
    labels = np.zeros(num_frames, dtype=np.int64)
    times = np.arange(num_frames) / fps
    for entry in timings:
        active = (times >= float(entry["start"])) & (times < float(entry["end"]))
        labels[active] = vocabulary.get(phone_name(str(entry["phoneme"])), -100)
    return labels


def phone_sequence(classes, silence: int = 0) -> list[int]:
    """Frame classes -> phone sequence: runs collapsed, silence dropped."""
    sequence, previous = [], None
    for value in classes:
        if value != previous and value != silence:
            sequence.append(int(value))
        previous = value
    return sequence


class LipReadingCollator:
    """Corpus examples -> ``lip_frames``, ``video_attention_mask`` and per-frame ``labels`` (-100 on padding)."""

    def __init__(self, lip_processor: LipVideoProcessor, phonemes: list[str]):
        self.lip_processor = lip_processor
        self.vocabulary = {phone: index for index, phone in enumerate(phonemes)}

    def __call__(self, examples: list[dict]) -> dict:
        batch = dict(self.lip_processor([np.asarray(e["lips"]) for e in examples], return_tensors="pt"))
        frames = batch["lip_frames"].shape[1]
        labels = torch.full((len(examples), frames), -100, dtype=torch.long)
        for row, example in enumerate(examples):
            clip = len(example["lips"])
            fps = float(example.get("fps", self.lip_processor.fps))
            labels[row, :clip] = torch.from_numpy(frame_labels(example["phoneme_timings"], clip, fps, self.vocabulary))
        batch["labels"] = labels
        return batch


@torch.inference_mode()
def evaluate_lip_reader(model: LipReadingModel, dataset, collator: LipReadingCollator, batch_size: int = 16) -> dict:
    """Frame accuracy and phone error rate on ``dataset``, with the majority-class and chance baselines."""
    model.eval()
    correct = scored = 0
    counts = np.zeros(model.config.num_phonemes, dtype=np.int64)
    hypotheses, references = [], []
    for start in range(0, len(dataset), batch_size):
        examples = [dataset[index] for index in range(start, min(start + batch_size, len(dataset)))]
        batch = collator(examples)
        labels = batch.pop("labels")
        predicted = model(**batch).logits.argmax(-1)
        valid = labels != -100
        correct += int((predicted[valid] == labels[valid]).sum())
        scored += int(valid.sum())
        counts += np.bincount(labels[valid].numpy(), minlength=len(counts))
        for row in range(len(examples)):
            keep = valid[row]
            # phone ids as words, so the word-level edit distance is the phone error rate
            hypotheses.append(" ".join(f"p{p}" for p in phone_sequence(predicted[row][keep].tolist())))
            references.append(" ".join(f"p{p}" for p in phone_sequence(labels[row][keep].tolist())))
    return {
        "clips": len(dataset),
        "frames": scored,
        "frame_accuracy": correct / scored,
        "phone_error_rate": word_error_rate(hypotheses, references),
        "majority_class": model.config.phonemes[int(counts.argmax())],
        "majority_class_frame_accuracy": float(counts.max() / scored),
        "chance_frame_accuracy": 1.0 / model.config.num_phonemes,
    }


def pretrain_lips(args: LipPretrainingArguments, training_args: TrainingArguments, log=print):
    """Train, score and save the lip reader into ``OUTPUT_DIR/lip-reader``; returns ``(folder, evaluation)``."""
    from transformers import Trainer

    train = load_split(args.data, args.train_split)
    missing = {"lips", "phoneme_timings"} - set(train.column_names)
    if missing:
        raise ValueError(
            f"{args.data} has no {sorted(missing)} column(s); lip pretraining needs lip clips with phone timings"
        )
    phonemes = phone_vocabulary(train["phoneme_timings"])
    roi_size = int(np.asarray(train[0]["lips"]).shape[-1])
    fps = int(train[0]["fps"]) if "fps" in train.column_names else 25
    config = LipReadingConfig(
        lip_frontend_width=args.lip_frontend_width,
        lip_embedding_dim=args.lip_embedding_dim,
        lip_temporal_layers=args.lip_temporal_layers,
        phonemes=phonemes,
        lip_roi_size=roi_size,
        fps=fps,
    )
    model = LipReadingModel(config)
    lip_processor = LipVideoProcessor(size=roi_size, fps=fps)
    collator = LipReadingCollator(lip_processor, phonemes)
    trainer = Trainer(model=model, args=training_args, train_dataset=train, data_collator=collator)
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    evaluation = None
    if args.eval_split:
        evaluation = {
            "split": args.eval_split,
            **evaluate_lip_reader(model, load_split(args.data, args.eval_split), collator),
        }
        evaluation["steps"] = trainer.state.global_step
        log(
            f"lip reading on {args.eval_split}: frame accuracy {evaluation['frame_accuracy']:.3f} (majority class "
            f"{evaluation['majority_class_frame_accuracy']:.3f}, chance {evaluation['chance_frame_accuracy']:.3f}), "
            f"phone error rate {evaluation['phone_error_rate']:.3f}"
        )
    final = os.path.join(training_args.output_dir, "lip-reader")
    with staged_folder(final) as staging:
        model.save_pretrained(staging)
        lip_processor.save_pretrained(staging)
        if evaluation is not None:
            with open(os.path.join(staging, "lip_reading_evaluation.json"), "w") as stream:
                json.dump(evaluation, stream, indent=2, ensure_ascii=False)
        card = render_lip_reading_card(config, steps=trainer.state.global_step, data=args.data, evaluation=evaluation)
        card.save(os.path.join(staging, "README.md"))
    return final, evaluation


def main(argv=None) -> int:
    parser = HfArgumentParser((LipPretrainingArguments, TrainingArguments))
    parser.set_defaults(
        max_steps=1500,
        learning_rate=2e-3,
        warmup_steps=50,
        lr_scheduler_type="cosine",
        per_device_train_batch_size=8,
        logging_steps=50,
        save_steps=500,
        save_total_limit=2,
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    args, training_args = parser.parse_args_into_dataclasses(args=argv)
    torch.manual_seed(training_args.seed)
    training_args.resume_from_checkpoint = resolve_resume(
        training_args.resume_from_checkpoint, training_args.output_dir
    )
    final, _ = pretrain_lips(args, training_args)
    print(f"lip reader written to {final}; train a backbone on it with elegance-train --lip_encoder {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
