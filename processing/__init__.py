"""Inputs of ELEGANCE models: the processor, its audio and lip-video parts, and the embedded corpus."""

from transformers import AutoConfig, AutoProcessor

from modeling_elegance import MODEL_CLASSES
from modeling_elegance.configuration_elegance import EleganceConfig

from .feature_extraction_elegance import EleganceFeatureExtractor
from .lip_video_processor import LipVideoProcessor
from .processing_elegance import EleganceProcessor, default_llm_path

AutoConfig.register(EleganceConfig.model_type, EleganceConfig, exist_ok=True)
for _config_class in (EleganceConfig, *MODEL_CLASSES):
    AutoProcessor.register(_config_class, EleganceProcessor, exist_ok=True)
# a saved processor carries its code, so it also loads with trust_remote_code=True where this package is absent
EleganceProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["EleganceFeatureExtractor", "EleganceProcessor", "LipVideoProcessor", "default_llm_path"]
