"""Inputs of ELEGANCE models: the processor, its audio and lip-video parts, and the embedded corpus."""

from transformers import AutoProcessor

from modeling_elegance.configuration_avur import AvurConfig
from modeling_elegance.configuration_backbones import AVMambaConfig, AVMambaSEConfig, UsevConfig, UsevSEConfig
from modeling_elegance.configuration_elegance import EleganceConfig

from .default_models import default_llm_path
from .feature_extraction_elegance import EleganceFeatureExtractor
from .lip_video_processor import LipVideoProcessor
from .processing_avur import AvurProcessor
from .processing_elegance import EleganceProcessor

for _config_class in (EleganceConfig, UsevConfig, AVMambaConfig, UsevSEConfig, AVMambaSEConfig):
    AutoProcessor.register(_config_class, EleganceProcessor, exist_ok=True)
# a saved processor carries its code, so it also loads with trust_remote_code=True where this package is absent
EleganceProcessor.register_for_auto_class("AutoProcessor")
AutoProcessor.register(AvurConfig, AvurProcessor, exist_ok=True)
AvurProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["AvurProcessor", "EleganceFeatureExtractor", "EleganceProcessor", "LipVideoProcessor", "default_llm_path"]
