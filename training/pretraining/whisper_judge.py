"""`elegance-finetune-whisper`: a Whisper fine-tuned on the clean training speech of a corpus, a sharper WER judge
for that corpus than Whisper as published (the synthetic voices of the embedded corpus are far from Whisper's
training data: the offline tiny.en reads their clean speech at about 36% WER).

It trains on the training split's clean targets and their transcripts with `Seq2SeqTrainer` and writes a plain
Whisper folder (model, processor), whole or not at all, that ``elegance-evaluate --asr DIR`` takes as its judge.
Measure it on the test split, whose speakers it never heard.

    elegance-finetune-whisper --data data/default --output_dir outputs/whisper-judge [--base NAME_OR_DIR]
        [--freeze_encoder true] [any transformers.Seq2SeqTrainingArguments flag]

By default the base is the offline Whisper tiny.en (`elegance-whisper-offline`) and its encoder stays frozen: the
decoder learns the corpus's words and the voices' quirks at half the cost of a step (the encoder's backward over
Whisper's 30-s window is most of it).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import HfArgumentParser, Seq2SeqTrainingArguments

from processing.processing_avur import whisper_labels

from ..data import load_split
from ..language_model import freeze
from ..staged_folder import staged_folder

SAMPLING_RATE = 16000


@dataclass
class WhisperJudgeArguments:
    data: str = field(metadata={"help": "a corpus folder written by elegance-data"})
    base: str | None = field(
        default=None, metadata={"help": "Whisper to start from, name or folder (default: the offline tiny.en)"}
    )
    train_split: str = field(default="train")
    eval_split: str | None = field(default="validation", metadata={"help": "'none' for no evaluation split"})
    freeze_encoder: bool = field(default=True, metadata={"help": "train the decoder only"})

    def __post_init__(self):
        if self.eval_split in ("", "none"):
            self.eval_split = None


class TranscribedSpeechCollator:
    """Corpus examples -> Whisper's ``input_features`` of the clean target and the transcript's token ``labels``
    (-100 where padded; the start token is left to the model, which prepends it when it shifts the labels)."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, examples):
        audio = [np.asarray(example["target"], dtype=np.float32) for example in examples]
        features = self.processor.feature_extractor(audio, sampling_rate=SAMPLING_RATE, return_tensors="pt")
        labels = whisper_labels(self.processor.tokenizer, [example["transcript"] for example in examples])
        return {"input_features": features.input_features, "labels": torch.from_numpy(labels)}


def finetune_whisper(args: WhisperJudgeArguments, training_args: Seq2SeqTrainingArguments):
    """Fine-tune and save the judge to ``OUTPUT_DIR/whisper-judge``; returns ``(trainer, folder)``."""
    from transformers import Seq2SeqTrainer, WhisperForConditionalGeneration, WhisperProcessor

    from ..offline_whisper import offline_whisper

    base = args.base or offline_whisper()
    model = WhisperForConditionalGeneration.from_pretrained(base, dtype=torch.float32)
    processor = WhisperProcessor.from_pretrained(base)
    if args.freeze_encoder:
        freeze(model.model.encoder)
    train = load_split(args.data, args.train_split)
    evaluation = load_split(args.data, args.eval_split) if args.eval_split else None
    trainer = Seq2SeqTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=evaluation if training_args.eval_strategy != "no" else None,
        data_collator=TranscribedSpeechCollator(processor),
        processing_class=processor,
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    final = os.path.join(training_args.output_dir, "whisper-judge")
    with staged_folder(final) as staging:
        trainer.save_model(staging)
        processor.save_pretrained(staging)
    return trainer, final


def main(argv=None) -> int:
    parser = HfArgumentParser((WhisperJudgeArguments, Seq2SeqTrainingArguments))
    parser.set_defaults(
        max_steps=300,
        learning_rate=1e-5,
        warmup_steps=30,
        per_device_train_batch_size=8,
        logging_steps=25,
        save_steps=100,
        save_total_limit=2,
        report_to="none",
        remove_unused_columns=False,
    )
    args, training_args = parser.parse_args_into_dataclasses(args=argv)
    torch.manual_seed(training_args.seed)
    _, final = finetune_whisper(args, training_args)
    print(f"Whisper judge written to {final}; score with it using elegance-evaluate --asr {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
