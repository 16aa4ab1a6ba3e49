"""USEV (Pan et al., 2022), the AV-DPRNN: the dual-path extraction models with BLSTM sequence models."""

from __future__ import annotations

from .configuration_backbones import UsevConfig, UsevSEConfig
from .modeling_dual_path import DualPathForSpeechEnhancement, DualPathForTargetSpeechExtraction


class UsevForTargetSpeechExtraction(DualPathForTargetSpeechExtraction):
    """USEV for audio-visual target speech extraction; see :class:`DualPathForTargetSpeechExtraction`."""

    config_class = UsevConfig


class UsevForSpeechEnhancement(DualPathForSpeechEnhancement):
    """Audio-only USEV for speech enhancement; see :class:`DualPathForSpeechEnhancement`."""

    config_class = UsevSEConfig
