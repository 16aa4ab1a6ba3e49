"""`AvurProcessor`: audio, lip video and transcripts for AVUR-LLM's recogniser.

Audio is read and checked by the :class:`EleganceFeatureExtractor` (files, dicts, channels, resampling, the same
clear errors as the extraction processor), then turned into Whisper's log-mel ``input_features`` by a
`WhisperFeatureExtractor`, with the ``attention_mask`` of the clip's feature frames. Lips go through the
:class:`LipVideoProcessor` (``lip_frames``, ``video_attention_mask``); transcripts through Whisper's tokenizer into
``labels`` (-100 on padding; the start token is left to the model). Audio and lips must last the same within one
video frame.
"""

from __future__ import annotations

import numpy as np
from transformers import BatchFeature, ProcessorMixin

from .feature_extraction_elegance import EleganceFeatureExtractor
from .lip_video_processor import LipVideoProcessor
from .processing_elegance import check_durations, package_subprocessor

# Whisper's text tokens per second of speech: fast English speech is about 4; the cap stops greedy decoding from
# looping on speech it cannot read (uncapped, it ran to 448 tokens and scored 204% WER on two-talker mixtures)
MAX_TOKENS_PER_SECOND = 6
MIN_NEW_TOKENS_CAP = 8


def max_new_tokens_for(seconds: float) -> int:
    """Whisper's decoding budget for a clip of ``seconds``: room for fast speech, not for a loop."""
    return MIN_NEW_TOKENS_CAP + int(np.ceil(MAX_TOKENS_PER_SECOND * seconds))


class AvurProcessor(ProcessorMixin):
    r"""
    Args:
        audio_feature_extractor: an :class:`EleganceFeatureExtractor` (reads and checks waveforms).
        feature_extractor: Whisper's `WhisperFeatureExtractor` (log-mel features).
        lip_feature_extractor: a :class:`LipVideoProcessor`.
        tokenizer: Whisper's tokenizer.
    """

    def __init__(self, audio_feature_extractor, feature_extractor, lip_feature_extractor, tokenizer):
        super().__init__(audio_feature_extractor, feature_extractor, lip_feature_extractor, tokenizer)

    @staticmethod
    def get_possibly_dynamic_module(module_name):
        return package_subprocessor(module_name)

    @classmethod
    def from_whisper(cls, whisper_name_or_path: str, lip_roi_size: int = 48, fps: int = 25) -> AvurProcessor:
        """The processor of a Whisper checkpoint (its feature extractor and tokenizer) with a lip processor."""
        from transformers import WhisperProcessor

        whisper = WhisperProcessor.from_pretrained(whisper_name_or_path)
        return cls(
            EleganceFeatureExtractor(sampling_rate=whisper.feature_extractor.sampling_rate),
            whisper.feature_extractor,
            LipVideoProcessor(size=lip_roi_size, fps=fps),
            whisper.tokenizer,
        )

    def __call__(
        self,
        audio=None,
        videos=None,
        text=None,
        sampling_rate: int | None = None,
        return_tensors: str | None = None,
        audio_features: bool = True,
    ):
        """Prepare any of audio (``input_features``, ``attention_mask``), lip clips (``lip_frames``,
        ``video_attention_mask``) and transcripts (``labels``). ``audio_features=False`` skips the log-mel features
        and gives only their ``attention_mask``: for a model fed its frozen encoder's cached states instead."""
        if audio is None and videos is None and text is None:
            raise ValueError("pass at least one of audio=, videos= or text=")
        outputs = {}
        if audio is not None:
            waveforms = self.audio_feature_extractor(audio, sampling_rate=sampling_rate, return_tensors="np")
            audio_mask = waveforms["audio_attention_mask"]
            clips = [row[: int(mask.sum())] for row, mask in zip(waveforms["input_values"], audio_mask)]
            if any(len(clip) > self.feature_extractor.n_samples for clip in clips):
                raise ValueError(
                    f"Whisper reads at most {self.feature_extractor.chunk_length} s at a time; got "
                    f"{max(len(c) for c in clips) / self.feature_extractor.sampling_rate:.1f} s: cut the audio into "
                    f"segments of at most {self.feature_extractor.chunk_length} s"
                )
            if audio_features:
                features = self.feature_extractor(
                    [np.asarray(clip, dtype=np.float32) for clip in clips],
                    sampling_rate=self.feature_extractor.sampling_rate,
                    return_attention_mask=True,
                    return_tensors="np",
                )
                outputs.update(input_features=features["input_features"], attention_mask=features["attention_mask"])
            else:  # the feature extractor's own mask: the frames whose hop starts inside the clip
                starts = np.arange(self.feature_extractor.nb_max_frames) * self.feature_extractor.hop_length
                outputs["attention_mask"] = np.stack([starts < len(clip) for clip in clips]).astype(np.int32)
        if videos is not None:
            outputs.update(self.lip_feature_extractor(videos, return_tensors="np"))
        if audio is not None and videos is not None:
            check_durations(
                audio_mask,
                outputs["video_attention_mask"],
                self.audio_feature_extractor.sampling_rate,
                self.lip_feature_extractor.fps,
            )
        if text is not None:
            outputs["labels"] = self.labels(text)
        return BatchFeature(outputs, tensor_type=return_tensors)

    def labels(self, text) -> np.ndarray:
        return whisper_labels(self.tokenizer, [text] if isinstance(text, str) else list(text))

    def batch_decode(self, token_ids, **kwargs) -> list[str]:
        """The transcripts of ``(batch, tokens)`` ids, without special tokens unless ``skip_special_tokens=False``."""
        kwargs.setdefault("skip_special_tokens", True)
        return [text.strip() for text in self.tokenizer.batch_decode(token_ids, **kwargs)]

    @property
    def model_input_names(self):
        return ["input_features", "attention_mask", "lip_frames", "video_attention_mask"]


def whisper_labels(tokenizer, texts: list[str]) -> np.ndarray:
    """Transcripts -> ``(batch, tokens)`` Whisper token ids, -100 on padding, without the start token (the model
    prepends it when it shifts the labels right)."""
    if tokenizer.pad_token is None:  # Whisper pads with its end token; the mask tells them apart
        tokenizer.pad_token = tokenizer.eos_token
    tokens = tokenizer([" " + str(text).strip() for text in texts], padding=True, return_tensors="np")
    labels = np.where(tokens["attention_mask"] == 1, tokens["input_ids"], -100)
    start = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    return labels[:, 1:] if (labels[:, 0] == start).all() else labels
