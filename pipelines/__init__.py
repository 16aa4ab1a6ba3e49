"""Pipelines above the models and processors: ``import pipelines`` registers their tasks with ``transformers.pipeline``.

import pipelines
from transformers import pipeline
extract = pipeline("target-speech-extraction", model="pretrained/usev-tiny")
recognise = pipeline("audio-visual-speech-recognition", model="runs/avsr/avsr")
"""

from transformers import AutoModel
from transformers.pipelines import PIPELINE_REGISTRY

import modeling_elegance  # noqa: F401  (registers the models with AutoModel)

from .audio_visual_speech_recognition import AudioVisualSpeechRecognitionPipeline
from .target_speech_extraction import TargetSpeechExtractionPipeline

PIPELINE_REGISTRY.register_pipeline(
    "target-speech-extraction", pipeline_class=TargetSpeechExtractionPipeline, pt_model=AutoModel, type="multimodal"
)

PIPELINE_REGISTRY.register_pipeline(
    "audio-visual-speech-recognition",
    pipeline_class=AudioVisualSpeechRecognitionPipeline,
    pt_model=AutoModel,
    type="multimodal",
)

__all__ = ["AudioVisualSpeechRecognitionPipeline", "TargetSpeechExtractionPipeline"]
