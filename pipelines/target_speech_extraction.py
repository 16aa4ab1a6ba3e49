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
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoProcessor, Pipeline

import processing  # noqa: F401  (registers EleganceProcessor with AutoProcessor)


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

    def _sanitize_parameters(self, lips=None, sampling_rate=None, **kwargs):
        preprocess = {}
        if lips is not None:
            preprocess["lips"] = lips
        if sampling_rate is not None:
            preprocess["sampling_rate"] = sampling_rate
        return preprocess, {}, {}

    def __call__(self, inputs=None, video=None, **kwargs):
        """Extract the target of one mixture, or of each ``{"mixture", "lips"}`` dict of a list; or, with
        ``video="talk.mp4"``, the voice of every face tracked in a video file (the ``[video]`` extra).

        Args:
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

    def preprocess(self, inputs, lips=None, sampling_rate=None):
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
        features = self.processor(
            audio=inputs, videos=[lips] if wants_lips else None, sampling_rate=sampling_rate, return_tensors="pt"
        )
        return {name: features[name] for name in self.processor.model_input_names if name in features}

    def _forward(self, model_inputs):
        return {
            "waveform": self.model(**model_inputs).waveform,
            "samples": model_inputs["audio_attention_mask"].sum(-1),
        }

    def postprocess(self, model_outputs):
        samples = int(model_outputs["samples"][0])
        waveform = model_outputs["waveform"][0, :samples].to(torch.float32).cpu().numpy()
        return {"waveform": np.ascontiguousarray(waveform), "sampling_rate": self.model.config.sampling_rate}
