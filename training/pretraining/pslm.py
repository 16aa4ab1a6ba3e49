"""`elegance-pretrain-pslm`: a small speech encoder pretrained with CTC on the clean target speech of a corpus, so
that output guidance works offline.

It is a `transformers` wav2vec2 (a 7-layer convolutional feature encoder at 50 frames/s and a small Transformer)
with a character CTC head, saved as a plain Hugging Face folder (model, character tokenizer, feature extractor):
``AutoModel.from_pretrained(DIR)`` gives the encoder used by output guidance, ``AutoModelForCTC`` the recogniser.

    elegance-pretrain-pslm --data data/default --output_dir outputs/pslm [--max_steps 600] [TrainingArguments flags]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import HfArgumentParser, TrainingArguments

from ..data import load_split
from ..staged_folder import staged_folder

SAMPLING_RATE = 16000
SIZES = {
    # about 0.5M parameters; narrow first convolutions keep its backward (which output guidance runs every step)
    # cheap: 62 ms for 4 x 3 s on 2 cores against 192 ms with 64 channels and layer norms throughout
    "tiny": dict(
        hidden_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=256,
        conv_dim=(32, 32, 64, 64, 64, 64, 64),
        num_conv_pos_embeddings=32,
        num_conv_pos_embedding_groups=8,
    ),
    "small": dict(
        hidden_size=256,
        num_hidden_layers=6,
        num_attention_heads=4,
        intermediate_size=1024,
        conv_dim=(128, 128, 256, 256, 256, 256, 256),
        num_conv_pos_embeddings=64,
        num_conv_pos_embedding_groups=16,
    ),
}


@dataclass
class PslmArguments:
    data: str = field(metadata={"help": "a corpus folder written by elegance-data"})
    size: str = field(default="tiny", metadata={"help": f"one of {', '.join(SIZES)}"})
    train_split: str = field(default="train")
    eval_split: str | None = field(default="validation", metadata={"help": "'none' for no evaluation split"})

    def __post_init__(self):
        if self.eval_split in ("", "none"):
            self.eval_split = None


def character_vocabulary(transcripts) -> dict[str, int]:
    """CTC vocabulary: pad (the blank) 0, unk 1, word delimiter ``|``, then every lower-cased character seen."""
    characters = sorted({char for text in transcripts for char in text.lower() if char != " "} - {"|"})
    vocabulary = {"<pad>": 0, "<unk>": 1, "|": 2}
    vocabulary.update({char: index + 3 for index, char in enumerate(characters)})
    return vocabulary


def build_pslm_processor(transcripts):
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "vocab.json")
        with open(path, "w") as stream:
            json.dump(character_vocabulary(transcripts), stream)
        tokenizer = Wav2Vec2CTCTokenizer(path, unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=SAMPLING_RATE, do_normalize=True, return_attention_mask=False)
    return Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer)


def build_pslm(processor, size: str = "tiny"):
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    if size not in SIZES:
        raise ValueError(f"unknown PSLM size {size!r}; choose one of {', '.join(SIZES)}")
    config = Wav2Vec2Config(
        vocab_size=len(processor.tokenizer),
        pad_token_id=processor.tokenizer.pad_token_id,
        feat_extract_norm="group",  # HuBERT-base's layout: group norm on the first convolution only
        do_stable_layer_norm=False,
        ctc_loss_reduction="mean",
        ctc_zero_infinity=True,
        mask_time_prob=0.05,
        layerdrop=0.0,
        **SIZES[size],
    )
    return Wav2Vec2ForCTC(config)


class CleanSpeechCollator:
    """Corpus examples -> ``input_values`` (the clean target, normalised) and CTC ``labels`` (-100 padded)."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, examples):
        audio = [np.asarray(example["target"], dtype=np.float32) for example in examples]
        batch = self.processor.feature_extractor(audio, sampling_rate=SAMPLING_RATE, padding=True, return_tensors="pt")
        labels = self.processor.tokenizer(
            [str(e["transcript"]).lower() for e in examples], padding=True, return_tensors="pt"
        )
        batch["labels"] = labels["input_ids"].masked_fill(labels["attention_mask"] == 0, -100)
        return batch


def pretrain_pslm(args: PslmArguments, training_args: TrainingArguments):
    """Train and save the PSLM to ``training_args.output_dir``; returns the trainer."""
    from transformers import Trainer

    train = load_split(args.data, args.train_split)
    evaluation = load_split(args.data, args.eval_split) if args.eval_split else None
    processor = build_pslm_processor([str(text) for text in train["transcript"]])
    model = build_pslm(processor, args.size)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=evaluation if training_args.eval_strategy != "no" else None,
        data_collator=CleanSpeechCollator(processor),
        processing_class=processor,
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    final = os.path.join(training_args.output_dir, "pslm")
    with staged_folder(final) as staging:
        trainer.save_model(staging)
    return trainer, final


def main(argv=None) -> int:
    parser = HfArgumentParser((PslmArguments, TrainingArguments))
    parser.set_defaults(
        max_steps=600,
        learning_rate=1e-3,
        warmup_steps=50,
        per_device_train_batch_size=8,
        logging_steps=50,
        save_steps=200,
        save_total_limit=2,
        report_to="none",
        remove_unused_columns=False,
    )
    args, training_args = parser.parse_args_into_dataclasses(args=argv)
    torch.manual_seed(training_args.seed)
    _, final = pretrain_pslm(args, training_args)
    print(f"PSLM written to {final}; train with output guidance using --pslm {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
