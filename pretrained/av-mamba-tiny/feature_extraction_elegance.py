"""`EleganceFeatureExtractor`: raw waveforms to padded model input.

Accepted audio, per example: a 1-D array or tensor ``(samples,)``; a 2-D one ``(channels, samples)`` or
``(samples, channels)`` (the shorter axis is taken as channels, at most 8, and averaged to mono); a
``{"array": ..., "sampling_rate": ...}`` dict (the `datasets` audio form); or a path to an audio file. A batch is a
list of those. int16 arrays are scaled to [-1, 1).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from transformers import BatchFeature, SequenceFeatureExtractor

MAX_CHANNELS = 8


class EleganceFeatureExtractor(SequenceFeatureExtractor):
    r"""Feature extractor for the waveform input of ELEGANCE models.

    Args:
        sampling_rate: the rate the model expects, in Hz.
        padding_value: value that pads shorter waveforms in a batch.
        do_normalize: scale each waveform to unit peak before padding (off by default: the models are trained
            on raw levels).

    Returns (on call): ``input_values`` ``(batch, samples)`` float32 and ``audio_attention_mask``
    ``(batch, samples)`` int (1 on real samples). The mask has its own name so that a processor can merge it with
    a tokenizer's ``attention_mask`` without overwriting it.
    """

    model_input_names = ["input_values", "audio_attention_mask"]

    def __init__(self, sampling_rate: int = 16000, padding_value: float = 0.0, do_normalize: bool = False, **kwargs):
        # mono waveforms: one value per time step (a saved config repeats it)
        kwargs.pop("feature_size", None)
        super().__init__(feature_size=1, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        self.do_normalize = do_normalize

    def _load(self, audio, index: int, sampling_rate: int | None) -> np.ndarray:
        source_rate = sampling_rate
        if isinstance(audio, (str, os.PathLike)):
            import soundfile

            if not os.path.exists(audio):
                raise FileNotFoundError(f"audio file {audio} does not exist")
            audio, file_rate = soundfile.read(str(audio), dtype="float32", always_2d=False)
            source_rate = self._known_rate(file_rate, sampling_rate, index)
        elif isinstance(audio, dict):
            if "array" not in audio:
                raise ValueError(
                    f"audio example {index} is a dict without an 'array' key; pass {{'array': ..., 'sampling_rate': ...}}"
                )
            if audio.get("sampling_rate") is not None:
                source_rate = self._known_rate(int(audio["sampling_rate"]), sampling_rate, index)
            audio = audio["array"]
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        audio = np.asarray(audio)
        if audio.dtype == np.int16:
            audio = audio.astype(np.float32) / 32768.0
        if not np.issubdtype(audio.dtype, np.floating):
            raise ValueError(
                f"audio example {index} has dtype {audio.dtype}; pass float samples in [-1, 1] or int16 PCM"
            )
        audio = audio.astype(np.float32)
        if audio.ndim == 2:
            channel_axis = int(np.argmin(audio.shape))
            if audio.shape[channel_axis] > MAX_CHANNELS:
                raise ValueError(
                    f"audio example {index} has shape {tuple(audio.shape)}; pass one waveform (samples,) or "
                    f"(channels, samples) per example, and a batch as a list of waveforms"
                )
            audio = audio.mean(axis=channel_axis)
        elif audio.ndim != 1:
            raise ValueError(
                f"audio example {index} has {audio.ndim} dimensions {tuple(audio.shape)}; pass one waveform "
                f"(samples,) or (channels, samples) per example"
            )
        if audio.size == 0:
            raise ValueError(f"audio example {index} is empty (0 samples)")
        if not np.all(np.isfinite(audio)):
            raise ValueError(f"audio example {index} contains NaN or infinite values; clean or drop it")
        if source_rate is not None and source_rate != self.sampling_rate:
            import torchaudio.functional as F

            audio = F.resample(torch.from_numpy(audio), source_rate, self.sampling_rate).numpy()
        return audio

    def _known_rate(self, source_rate: int, sampling_rate: int | None, index: int) -> int:
        """The input says its own rate: resample only when the caller confirmed it with ``sampling_rate=``."""
        if source_rate != self.sampling_rate and sampling_rate is None:
            raise ValueError(
                f"audio example {index} is {source_rate} Hz, the model expects {self.sampling_rate} Hz; "
                f"pass sampling_rate={source_rate} to resample"
            )
        if sampling_rate is not None and sampling_rate != source_rate:
            raise ValueError(f"audio example {index} is {source_rate} Hz but sampling_rate={sampling_rate} was passed")
        return source_rate

    def __call__(
        self,
        raw_audio,
        sampling_rate: int | None = None,
        padding: bool = True,
        max_length: int | None = None,
        return_tensors: str | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Turn one waveform or a list of them into ``input_values`` and ``audio_attention_mask``.

        Args:
            raw_audio: one example or a list of examples (see the module docstring for the accepted forms).
            sampling_rate: the rate of ``raw_audio``; when it differs from the model's the audio is resampled
                with torchaudio. Without it, plain arrays are taken to be at the model's rate.
            padding: pad to the longest example (``True``) or to ``max_length`` (``"max_length"``).
            max_length: with ``padding="max_length"``, the padded length; longer examples raise.
            return_tensors: ``"pt"`` or ``"np"``; lists otherwise.
        """
        batch = list(raw_audio) if isinstance(raw_audio, (list, tuple)) else [raw_audio]
        if not batch:
            raise ValueError("no audio given: pass a waveform or a list of waveforms")
        waveforms = [self._load(audio, index, sampling_rate) for index, audio in enumerate(batch)]
        if self.do_normalize:
            waveforms = [w / max(float(np.abs(w).max()), 1e-8) for w in waveforms]
        lengths = [len(w) for w in waveforms]
        target = max(lengths)
        if padding == "max_length":
            if max_length is None:
                raise ValueError("padding='max_length' needs max_length=")
            if target > max_length:
                raise ValueError(f"an audio example has {target} samples, longer than max_length={max_length}")
            target = max_length
        elif not padding and len(set(lengths)) > 1:
            raise ValueError("audio examples differ in length; pass padding=True to pad them into one batch")
        values = np.full((len(waveforms), target), self.padding_value, dtype=np.float32)
        mask = np.zeros((len(waveforms), target), dtype=np.int64)
        for row, waveform in enumerate(waveforms):
            values[row, : len(waveform)] = waveform
            mask[row, : len(waveform)] = 1
        return BatchFeature({"input_values": values, "audio_attention_mask": mask}, tensor_type=return_tensors)
