"""Training data: the embedded corpus or a real-data mixture list, with on-the-fly visual impairment, and the
collator that turns examples into backbone inputs plus the guidance heads' inputs.

Every random choice of training (the dynamic mixture; impairment type, ratio and position; input guidance's text
dropout; CMKT's shift) is drawn per example from ``(seed, epoch, index)``. A run therefore sees the same augmentation whatever the
number of processes, and a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from processing.visual_impairment import IMPAIRMENT_TYPES, TRAINING_MAX_RATIO, impair_lips

from .dynamic_mixing import DynamicMixer
from .language_model import tokenize_transcripts
from .lip_embedding_cache import LipEmbeddings
from .transcript_embedding_cache import DEFAULT_MAX_TEXT_TOKENS, TranscriptEmbeddings


def load_split(
    data: str,
    split: str,
    audio_root: str | None = None,
    visual_root: str | None = None,
    max_examples: int | None = None,
):
    """A map-style dataset of ``split``: from a corpus folder (``elegance-data generate``) or a mixture-list CSV
    (``partition`` = split; the CSV's ``val`` partition also answers to ``validation``)."""
    if os.path.isfile(data) and data.endswith(".csv"):
        from processing.real_data import MixtureListDataset

        if audio_root is None or visual_root is None:
            raise ValueError(f"{data} is a mixture list: pass --audio_root and --visual_root too")
        partition = {"validation": "val"}.get(split, split)
        dataset = MixtureListDataset(data, audio_root, visual_root, partition=partition)
    elif os.path.isfile(os.path.join(data, "dataset_dict.json")):
        from datasets import load_from_disk

        corpus = load_from_disk(data)
        if split not in corpus:
            raise ValueError(f"{data} has no split {split!r}; it has {', '.join(corpus)}")
        dataset = corpus[split].with_format("numpy")
    else:
        raise FileNotFoundError(
            f"{data} is neither a corpus folder (no dataset_dict.json; make one with `elegance-data generate --out "
            f"{data}`) nor a mixture-list .csv"
        )
    if max_examples is not None and max_examples < len(dataset):
        dataset = (
            dataset.select(range(max_examples))
            if hasattr(dataset, "select")
            else torch.utils.data.Subset(dataset, range(max_examples))
        )
    return dataset


def transcripts_of(dataset) -> list[str]:
    if hasattr(dataset, "column_names") and "transcript" in dataset.column_names:
        return [str(text) for text in dataset["transcript"]]
    return [str(dataset[index]["transcript"]) for index in range(len(dataset))]


def lip_clips(dataset) -> list[np.ndarray]:
    """Every example's ``lips`` as uint8 ``(frames, H, W)`` (empty when the dataset has precomputed embeddings)."""
    if hasattr(dataset, "select_columns"):
        if "lips" not in dataset.column_names:
            return []
        return [np.asarray(row["lips"], dtype=np.uint8) for row in dataset.select_columns(["lips"])]
    rows = (dataset[index] for index in range(len(dataset)))
    return [np.asarray(row["lips"], dtype=np.uint8) for row in rows if "lips" in row]


class GuidanceDataset(torch.utils.data.Dataset):
    r"""Examples of ``dataset`` with the training-time random draws attached.

    Args:
        dataset: a map-style dataset of corpus-schema examples.
        training: draw impairments and guidance randomness; otherwise clean lips, no text, no shift.
        seed: seed of the draws.
        impair_visual: impair ``U(0, 0.8)`` of the lip frames with a random impairment type.
        impair_probability: probability that a training example's lips are impaired (when ``impair_visual``).
        mixer: a :class:`DynamicMixer` that draws a new mixture for each training example; None keeps the stored one.
        input_probability: probability that an example's prior gets its real text embeddings.
        max_shift: CMKT's largest shift, in tokens.
    """

    def __init__(
        self,
        dataset,
        training: bool,
        seed: int = 0,
        impair_visual: bool = True,
        input_probability: float = 0.2,
        max_shift: int = 0,
        impair_probability: float = 1.0,
        mixer: DynamicMixer | None = None,
    ):
        self.dataset = dataset
        self.training = training
        self.seed = seed
        self.impair_visual = impair_visual
        self.impair_probability = impair_probability
        self.mixer = mixer
        self.input_probability = input_probability
        self.max_shift = max_shift
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        example = dict(self.dataset[int(index)])
        keep, shift, impaired = False, 0, False
        if self.training:
            rng = np.random.default_rng([self.seed, self.epoch, int(index)])
            if self.impair_visual and "lips" in example:
                kind = IMPAIRMENT_TYPES[int(rng.integers(len(IMPAIRMENT_TYPES)))]
                ratio = float(rng.uniform(0.0, TRAINING_MAX_RATIO))
                if self.impair_probability >= 1.0 or rng.random() < self.impair_probability:
                    example["lips"], _ = impair_lips(np.asarray(example["lips"]), kind, ratio, rng)
                    impaired = True
            keep = bool(rng.random() < self.input_probability)
            shift = int(rng.integers(-self.max_shift, self.max_shift + 1))
            if self.mixer is not None:
                # a stream of its own, so that turning dynamic mixing on leaves the other draws as they were
                example = self.mixer.remix(example, np.random.default_rng([self.seed, self.epoch, int(index), 1]))
        example["prior_keep"], example["embedding_shift"], example["lips_impaired"] = keep, shift, impaired
        return example


def pad_sequences(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[(length_i, dim)]`` -> ``(batch, max length, dim)`` zero-padded and its ``(batch, max length)`` mask."""
    longest = max(len(row) for row in rows)
    padded = rows[0].new_zeros(len(rows), longest, *rows[0].shape[1:])
    mask = torch.zeros(len(rows), longest, dtype=torch.long)
    for index, row in enumerate(rows):
        padded[index, : len(row)] = row
        mask[index, : len(row)] = 1
    return padded, mask


class GuidanceCollator:
    r"""Examples -> one batch.

    Always: ``input_values``, ``audio_attention_mask``, ``labels`` (the target), and for audio-visual backbones
    ``lip_frames`` + ``video_attention_mask`` (or ``lip_embeds``: the examples' own, or those of a frozen lip
    encoder through ``lip_embeddings``). With ``embeddings``: ``transcript_embeds``
    ``(batch, tokens, hidden)``, ``transcript_embeds_mask``, ``transcript_pooled (batch, hidden)``,
    ``prior_keep (batch,)`` and ``embedding_shift (batch,)``. With ``tokenizer``: ``transcript_input_ids`` and
    ``transcript_attention_mask`` for next-token prediction.
    """

    def __init__(
        self,
        processor,
        uses_lips: bool,
        embeddings: TranscriptEmbeddings | None = None,
        tokenizer=None,
        max_text_tokens: int = DEFAULT_MAX_TEXT_TOKENS,
        lip_embeddings: LipEmbeddings | None = None,
    ):
        self.processor = processor
        self.uses_lips = uses_lips
        self.lip_embeddings = lip_embeddings
        self.embeddings = embeddings
        self.tokenizer = tokenizer
        self.max_text_tokens = max_text_tokens

    def __call__(self, examples: list[dict]) -> dict:
        audio = self.processor.audio_feature_extractor
        batch = dict(audio([example["mixture"] for example in examples], return_tensors="pt"))
        batch["labels"] = audio([example["target"] for example in examples], return_tensors="pt")["input_values"]
        if self.uses_lips:
            if "lip_embeds" in examples[0]:
                lip_embeds, mask = pad_sequences(
                    [torch.as_tensor(np.asarray(e["lip_embeds"]), dtype=torch.float32) for e in examples]
                )
                batch.update(lip_embeds=lip_embeds, video_attention_mask=mask)
            elif self.lip_embeddings is not None:
                clips = [np.asarray(e["lips"]) for e in examples]
                embedded = self.lip_embeddings(clips, [not e.get("lips_impaired", False) for e in examples])
                lip_embeds, mask = pad_sequences(embedded)
                batch.update(lip_embeds=lip_embeds, video_attention_mask=mask)
            else:
                batch.update(
                    self.processor.lip_feature_extractor([np.asarray(e["lips"]) for e in examples], return_tensors="pt")
                )
        transcripts = [str(example.get("transcript", "")) for example in examples]
        if self.embeddings is not None:
            tokens, pooled = zip(*(self.embeddings.lookup(text) for text in transcripts))
            batch["transcript_embeds"], batch["transcript_embeds_mask"] = pad_sequences(list(tokens))
            batch["transcript_pooled"] = torch.stack(pooled)
            batch["prior_keep"] = torch.tensor([bool(e["prior_keep"]) for e in examples])
            batch["embedding_shift"] = torch.tensor([int(e["embedding_shift"]) for e in examples])
        if self.tokenizer is not None:
            tokens = tokenize_transcripts(self.tokenizer, transcripts, self.max_text_tokens)
            batch["transcript_input_ids"], batch["transcript_attention_mask"] = (
                tokens["input_ids"],
                tokens["attention_mask"],
            )
        return batch
