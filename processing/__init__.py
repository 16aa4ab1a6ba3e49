"""Inputs of ELEGANCE models: the processor, its audio and lip-video parts, and the embedded corpus."""

from transformers import AutoFeatureExtractor, AutoProcessor

from modeling_elegance.configuration_avur import AvurConfig
from modeling_elegance.configuration_backbones import AVMambaConfig, AVMambaSEConfig, UsevConfig, UsevSEConfig
from modeling_elegance.configuration_elegance import EleganceConfig
from modeling_elegance.configuration_lip_reading import LipReadingConfig

from .default_models import default_llm_path
from .feature_extraction_elegance import EleganceFeatureExtractor
from .lip_video_processor import LipVideoProcessor
from .processing_avur import AvurProcessor
from .processing_elegance import EleganceProcessor

for _config_class in (EleganceConfig, UsevConfig, AVMambaConfig, UsevSEConfig, AVMambaSEConfig):
    AutoProcessor.register(_config_class, EleganceProcessor, exist_ok=True)
    AutoFeatureExtractor.register(_config_class, EleganceFeatureExtractor, exist_ok=True)
# transformers >= 5.25 loads a processor's parts through AutoFeatureExtractor, which finds a class by the name saved
# with it only among registered classes (the lip reader's config keys the lip processor), and, where the package is
# absent, through the part's own auto_map entry
AutoFeatureExtractor.register(LipReadingConfig, LipVideoProcessor, exist_ok=True)
EleganceFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
LipVideoProcessor.register_for_auto_class("AutoFeatureExtractor")
# a saved processor carries its code, so it also loads with trust_remote_code=True where this package is absent
EleganceProcessor.register_for_auto_class("AutoProcessor")
AutoProcessor.register(AvurConfig, AvurProcessor, exist_ok=True)
AvurProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["AvurProcessor", "EleganceFeatureExtractor", "EleganceProcessor", "LipVideoProcessor", "default_llm_path"]
