"""The ``audio-visual-speech-recognition`` task of ``transformers.pipeline``, registered by ``import pipelines``.

    import pipelines
    from transformers import pipeline
    recognise = pipeline("audio-visual-speech-recognition", model="runs/avsr/avsr")   # an AVUR folder
    recognise("speech.wav", lips=lips)               # {"text": "..."}; without lips: audio only (Whisper alone)
    recognise("speech.wav", lips=lips, num_beams=5)  # beam search

The speech is a waveform (at 16 kHz, or give ``sampling_rate=``), an audio file or a ``{"array",
"sampling_rate"}`` dict; the lips a ``(frames, height, width)`` array of grayscale mouth ROIs or a ``.npy`` file.
"""

from __future__ import annotations

import torch
from transformers import AutoProcessor, Pipeline

import processing  # noqa: F401  (registers AvurProcessor with AutoProcessor)
from processing.processing_avur import max_new_tokens_for


class AudioVisualSpeechRecognitionPipeline(Pipeline):
    """Speech + the speaker's lip clip -> the transcript."""

    # the processor is loaded here rather than by pipeline(), which looks only for transformers' own processor classes
    _load_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_image_processor = False

    def __init__(self, model, processor=None, **kwargs):
        if getattr(model.config, "model_type", None) != "avur":
            raise ValueError(
                f"audio-visual-speech-recognition needs an AVUR recogniser (elegance-train-avsr), got a "
                f"{model.config.model_type!r} model"
            )
        if processor is None:
            processor = AutoProcessor.from_pretrained(model.name_or_path)
        super().__init__(model=model, processor=processor, **kwargs)

    def _sanitize_parameters(self, lips=None, sampling_rate=None, num_beams=None, **kwargs):
        preprocess = {
            key: value for key, value in (("lips", lips), ("sampling_rate", sampling_rate)) if value is not None
        }
        return preprocess, ({"num_beams": num_beams} if num_beams else {}), {}

    def preprocess(self, inputs, lips=None, sampling_rate=None):
        features = self.processor(
            audio=inputs, videos=None if lips is None else [lips], sampling_rate=sampling_rate, return_tensors="pt"
        )
        return {name: features[name] for name in self.processor.model_input_names if name in features}

    def _forward(self, model_inputs, num_beams: int = 1):
        seconds = float(model_inputs["attention_mask"].sum()) / 100  # Whisper's feature frames: 100 a second
        with torch.inference_mode():
            ids = self.model.generate(**model_inputs, num_beams=num_beams, max_new_tokens=max_new_tokens_for(seconds))
        return {"ids": ids}

    def postprocess(self, model_outputs):
        return {"text": self.processor.batch_decode(model_outputs["ids"])[0]}
