"""ELEGANCE extraction backbones, the lip reader and AVUR-LLM's recogniser as Hugging Face models.

Importing the package registers every config and model with `AutoConfig` / `AutoModel` and marks the classes for
`register_for_auto_class`, so a saved folder also loads with ``trust_remote_code=True`` where this package is not
installed.
"""

from transformers import AutoConfig, AutoModel

from .configuration_avur import AvurConfig
from .configuration_backbones import AVMambaConfig, AVMambaSEConfig, DualPathConfig, UsevConfig, UsevSEConfig
from .configuration_elegance import EleganceConfig
from .configuration_lip_reading import LipReadingConfig
from .losses import activity_aware_loss, negative_si_sdr_loss, scale_invariant_sdr
from .modeling_av_mamba import AVMambaForSpeechEnhancement, AVMambaForTargetSpeechExtraction
from .modeling_avur import AvurForConditionalGeneration, AvurOutput
from .modeling_dual_path import SpeechExtractionOutput
from .modeling_lip_reading import LipReadingModel, LipReadingOutput
from .modeling_usev import UsevForSpeechEnhancement, UsevForTargetSpeechExtraction
from .presets import PRESETS, preset_config

MODEL_CLASSES = {
    UsevConfig: UsevForTargetSpeechExtraction,
    AVMambaConfig: AVMambaForTargetSpeechExtraction,
    UsevSEConfig: UsevForSpeechEnhancement,
    AVMambaSEConfig: AVMambaForSpeechEnhancement,
}

AutoConfig.register(EleganceConfig.model_type, EleganceConfig, exist_ok=True)
for _config_class, _model_class in {
    **MODEL_CLASSES,
    LipReadingConfig: LipReadingModel,
    AvurConfig: AvurForConditionalGeneration,
}.items():
    AutoConfig.register(_config_class.model_type, _config_class, exist_ok=True)
    AutoModel.register(_config_class, _model_class, exist_ok=True)
    _config_class.register_for_auto_class()
    _model_class.register_for_auto_class("AutoModel")

__all__ = [
    "AvurConfig",
    "AvurForConditionalGeneration",
    "AvurOutput",
    "AVMambaConfig",
    "AVMambaForSpeechEnhancement",
    "AVMambaForTargetSpeechExtraction",
    "AVMambaSEConfig",
    "DualPathConfig",
    "EleganceConfig",
    "LipReadingConfig",
    "LipReadingModel",
    "LipReadingOutput",
    "MODEL_CLASSES",
    "PRESETS",
    "SpeechExtractionOutput",
    "UsevConfig",
    "UsevForSpeechEnhancement",
    "UsevForTargetSpeechExtraction",
    "UsevSEConfig",
    "activity_aware_loss",
    "negative_si_sdr_loss",
    "preset_config",
    "scale_invariant_sdr",
]
