"""The ``target-speech-extraction`` task of ``transformers.pipeline``, registered by ``import pipelines``.

    import pipelines
    from transformers import pipeline
    extract = pipeline("target-speech-extraction", model="org/name")   # or a local folder
    result = extract("mixture.wav", lips="lips.npy")                   # {"waveform": (samples,), "sampling_rate"}
    voices = extract(video="talk.mp4")                                 # one dict per tracked face ([video] extra)

The mixture is a waveform array (at the model's rate, or give ``sampling_rate=``), an audio file, or a
``{"array", "sampling_rate"}`` dict; the lips are a ``(frames, height, width)`` array of grayscale mouth ROIs or a
``.npy`` file of one. Several examples go in as a list of ``{"mixture", "lips"}`` dicts. Audio-only (speech
enhancement) models take no lips.

A mixture longer than ``chunk_seconds`` (default 4 s) is extracted in chunks that overlap by ``overlap_seconds``
(default 1 s), as the video path does (:mod:`pipelines.chunked_extraction`). The models were trained on 3 s
segments and normalise over their whole input, so one pass over a long recording is much worse (the shipped
usev-tiny, per-mixture SI-SDRi: on 20 joined `test_switch` mixtures, 60 s, 7.40 dB in one pass against 10.47 dB in
chunks; on the 6 joined `tiny` test mixtures, 18 s, 5.07 against 8.11 dB). Chunked estimates come back at the
mixture's scale, since chunks must agree in scale to be joined; a mixture of at most one chunk gives the model's own
output. ``chunk_seconds=0`` runs one pass whatever the length.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoProcessor, Pipeline

import processing  # noqa: F401  (registers EleganceProcessor with AutoProcessor)
from processing.processing_elegance import check_duration_lengths

from .chunked_extraction import DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP_SECONDS, check_chunking, extract_in_chunks


class TargetSpeechExtractionPipeline(Pipeline):
    """Mixture + the target speaker's lip clip -> the target speaker's waveform."""

    # the processor is loaded here rather than by pipeline(), which looks only for transformers' own processor classes
    _load_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_image_processor = False

    def __init__(self, model, processor=None, **kwargs):
        if processor is None:
            processor = AutoProcessor.from_pretrained(model.name_or_path)
        super().__init__(model=model, processor=processor, **kwargs)

    def _sanitize_parameters(self, lips=None, sampling_rate=None, chunk_seconds=None, overlap_seconds=None, **kwargs):
        # only what was given: a call's parameters override those given to pipeline(), unset ones keep them
        preprocess, forward = {}, {}
        if lips is not None:
            preprocess["lips"] = lips
        if sampling_rate is not None:
            preprocess["sampling_rate"] = sampling_rate
        if chunk_seconds is not None:
            preprocess["chunk_seconds"] = forward["chunk_seconds"] = chunk_seconds
        if overlap_seconds is not None:
            forward["overlap_seconds"] = overlap_seconds
        # refused here, before any work, together with what pipeline() was given; 0 seconds turns chunking off
        chunking = {**getattr(self, "_forward_params", {}), **forward}
        chunk = chunking.get("chunk_seconds", DEFAULT_CHUNK_SECONDS)
        if chunk != 0:
            check_chunking(chunk, chunking.get("overlap_seconds", DEFAULT_OVERLAP_SECONDS))
        return preprocess, forward, {}

    def __call__(self, inputs=None, video=None, **kwargs):
        """Extract the target of one mixture, or of each ``{"mixture", "lips"}`` dict of a list; or, with
        ``video="talk.mp4"``, the voice of every face tracked in a video file (the ``[video]`` extra).

        Args:
            chunk_seconds: mixtures longer than this are extracted in overlapping chunks (default 4 s; 0: one pass
                over the whole mixture, whatever its length).
            overlap_seconds: the least overlap of neighbouring chunks (default 1 s, at most half a chunk).
            video: a video file with audio; further keywords go to
                :func:`pipelines.video_extraction.extract_from_video` (``faces``, ``min_coverage``,
                ``chunk_seconds``, ``overlap_seconds``, ``detect_every``).

        Returns:
            ``{"waveform": np.ndarray (samples,), "sampling_rate": int}``, or a list of them for a list input; for a
            video, one such dict per face, with ``"face"``, ``"coverage"`` and ``"mouth_rois"`` added.
        """
        if video is not None:
            if inputs is not None:
                raise ValueError("pass either a mixture (with lips=) or video=, not both")
            return self._extract_from_video(video, **kwargs)
        if inputs is None:
            raise ValueError("pass a mixture (waveform, audio file or dict) with lips=, or video='file.mp4'")
        return super().__call__(inputs, **kwargs)

    def _extract_from_video(self, video: str, **kwargs) -> list[dict]:
        from .video_extraction import extract_from_video

        result = extract_from_video(video, self.model, self.processor, **kwargs)
        return [
            {
                "face": face.face,
                "waveform": face.waveform,
                "sampling_rate": result.timeline.sampling_rate,
                "coverage": face.coverage,
                "mouth_rois": face.mouth_rois,
            }
            for face in result.faces
        ]

    def preprocess(self, inputs, lips=None, sampling_rate=None, chunk_seconds=DEFAULT_CHUNK_SECONDS):
        if isinstance(inputs, dict) and "mixture" in inputs:
            lips = inputs.get("lips", lips)
            sampling_rate = inputs.get("sampling_rate", sampling_rate)
            inputs = inputs["mixture"]
        wants_lips = self.model.config.lip_input is not None
        if wants_lips and lips is None:
            raise ValueError(
                "target speech extraction needs the target speaker's lips: pass lips= (a (frames, height, width) "
                "array of mouth ROIs or a .npy file), or {'mixture': ..., 'lips': ...}"
            )
        if not wants_lips and lips is not None:
            raise ValueError(f"{type(self.model).__name__} is audio-only (speech enhancement); call it without lips")
        # decoded once, at the model's rate
        mixture = self.processor.audio_feature_extractor._load(inputs, 0, sampling_rate)
        lips = self.processor.lip_feature_extractor._load(lips, 0) if wants_lips else None
        if chunk_seconds and len(mixture) > chunk_seconds * self.model.config.sampling_rate:
            if wants_lips:  # the processor's check, without making features of the whole recording
                check_duration_lengths(
                    [len(mixture)],
                    [len(lips)],
                    self.model.config.sampling_rate,
                    self.processor.lip_feature_extractor.fps,
                )
            return {"mixture": mixture, "lips": lips}
        features = self.processor(audio=mixture, videos=[lips] if wants_lips else None, return_tensors="pt")
        return {name: features[name] for name in self.processor.model_input_names if name in features}

    def _forward(self, model_inputs, chunk_seconds=DEFAULT_CHUNK_SECONDS, overlap_seconds=DEFAULT_OVERLAP_SECONDS):
        if "mixture" in model_inputs:  # longer than a chunk (see preprocess)
            waveform = extract_in_chunks(
                self.model,
                self.processor,
                model_inputs["mixture"],
                model_inputs["lips"],
                chunk_seconds,
                overlap_seconds,
            )
            return {"waveform": torch.from_numpy(waveform)[None], "samples": torch.tensor([len(waveform)])}
        return {
            "waveform": self.model(**model_inputs).waveform,
            "samples": model_inputs["audio_attention_mask"].sum(-1),
        }

    def postprocess(self, model_outputs):
        samples = int(model_outputs["samples"][0])
        waveform = model_outputs["waveform"][0, :samples].to(torch.float32).cpu().numpy()
        return {"waveform": np.ascontiguousarray(waveform), "sampling_rate": self.model.config.sampling_rate}
