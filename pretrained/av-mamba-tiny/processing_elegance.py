"""`EleganceProcessor`: audio, lip video and text in one call.

It wraps an :class:`EleganceFeatureExtractor` (audio), a :class:`LipVideoProcessor` (mouth ROI clips) and the
guidance LLM's tokenizer (transcripts; used in training only). Outputs keep distinct names: ``input_values`` and
``audio_attention_mask``, ``lip_frames`` and ``video_attention_mask``, ``input_ids`` and ``attention_mask``.
"""

from __future__ import annotations

from transformers import AutoTokenizer, BatchFeature, ProcessorMixin

from .default_models import default_llm_path
from .feature_extraction_elegance import EleganceFeatureExtractor
from .lip_video_processor import LipVideoProcessor


class EleganceProcessor(ProcessorMixin):
    r"""Processor for ELEGANCE models.

    Args:
        audio_feature_extractor: an :class:`EleganceFeatureExtractor`.
        lip_feature_extractor: a :class:`LipVideoProcessor`.
        tokenizer: the guidance LLM's tokenizer.
    """

    def __init__(self, audio_feature_extractor, lip_feature_extractor, tokenizer):
        super().__init__(audio_feature_extractor, lip_feature_extractor, tokenizer)

    @staticmethod
    def get_possibly_dynamic_module(module_name):
        return package_subprocessor(module_name)

    @classmethod
    def from_defaults(
        cls,
        tokenizer_name_or_path: str | None = None,
        sampling_rate: int = 16000,
        fps: int = 25,
        lip_roi_size: int = 88,
    ):
        """A processor for the given formats, with the tokenizer of ``tokenizer_name_or_path`` (default: the
        offline MiniLM)."""
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_name_or_path or default_llm_path())
        return cls(
            EleganceFeatureExtractor(sampling_rate=sampling_rate),
            LipVideoProcessor(size=lip_roi_size, fps=fps),
            tokenizer,
        )

    def __call__(
        self,
        audio=None,
        videos=None,
        text=None,
        sampling_rate: int | None = None,
        return_tensors: str | None = None,
        **kwargs,
    ):
        """Prepare any of audio, lip clips and text.

        Args:
            audio: waveform(s), see :class:`EleganceFeatureExtractor`.
            videos: lip clip(s) ``(frames, height, width)``, see :class:`LipVideoProcessor`.
            text: transcript(s) for the guidance LLM.
            sampling_rate: rate of ``audio`` when it is not the model's.
            return_tensors: ``"pt"``, ``"np"`` or None.

        Raises:
            ValueError: when audio and lip clips are both given and an example's durations disagree by more than
                one video frame.
        """
        if audio is None and videos is None and text is None:
            raise ValueError("pass at least one of audio=, videos= or text=")
        outputs = {}
        if text is not None:
            outputs.update(self.tokenizer(text, padding=True, return_tensors=return_tensors, **kwargs))
        if videos is not None:
            outputs.update(self.lip_feature_extractor(videos, return_tensors=return_tensors))
        if audio is not None:
            outputs.update(
                self.audio_feature_extractor(audio, sampling_rate=sampling_rate, return_tensors=return_tensors)
            )
        if audio is not None and videos is not None:
            self._check_durations(outputs["audio_attention_mask"], outputs["video_attention_mask"])
        return BatchFeature(outputs, tensor_type=return_tensors)

    def _check_durations(self, audio_mask, video_mask):
        check_durations(
            audio_mask, video_mask, self.audio_feature_extractor.sampling_rate, self.lip_feature_extractor.fps
        )

    @property
    def model_input_names(self):
        return ["input_values", "audio_attention_mask", "lip_frames", "video_attention_mask"]


def check_durations(audio_mask, video_mask, rate: int, fps: int) -> None:
    """Each example's audio (``audio_mask`` ``(batch, samples)``) and lip clip (``video_mask`` ``(batch, frames)``)
    must last the same within one video frame; otherwise an error that says by how much they differ."""
    check_duration_lengths(
        [int(sum(row)) for row in audio_mask.tolist()], [int(sum(row)) for row in video_mask.tolist()], rate, fps
    )


def check_duration_lengths(audio_lengths: list[int], video_lengths: list[int], rate: int, fps: int) -> None:
    """:func:`check_durations` on lengths: samples of each example's audio, frames of its lip clip."""
    if len(audio_lengths) != len(video_lengths):
        raise ValueError(
            f"got {len(audio_lengths)} audio examples but {len(video_lengths)} lip clips; pass one clip per waveform"
        )
    for index, (samples, frames) in enumerate(zip(audio_lengths, video_lengths)):
        audio_seconds, video_seconds = samples / rate, frames / fps
        # the same rule as the model's own check (one frame), applied here to the raw inputs
        if abs(audio_seconds - video_seconds) > 1.0 / fps + 1e-9:
            raise ValueError(
                f"example {index}: the audio lasts {audio_seconds:.2f} s but the lip clip has {frames} frames at "
                f"{fps} fps ({video_seconds:.2f} s); they must agree within one frame ({1.0 / fps:.2f} s). "
                f"Trim or pad one of them, or check the clip's frame rate"
            )


def package_subprocessor(module_name: str):
    """The class of a sub-processor by name: this package's own (which transformers' registries do not list), else
    transformers'."""
    own = {cls.__name__: cls for cls in (EleganceFeatureExtractor, LipVideoProcessor)}
    return own[module_name] if module_name in own else ProcessorMixin.get_possibly_dynamic_module(module_name)
