"""AV-Mamba: the dual-path extraction models with bidirectional Mamba sequence models."""

from __future__ import annotations

from .configuration_backbones import AVMambaConfig, AVMambaSEConfig
from .modeling_dual_path import DualPathForSpeechEnhancement, DualPathForTargetSpeechExtraction


class AVMambaForTargetSpeechExtraction(DualPathForTargetSpeechExtraction):
    """AV-Mamba for audio-visual target speech extraction; see :class:`DualPathForTargetSpeechExtraction`."""

    config_class = AVMambaConfig


class AVMambaForSpeechEnhancement(DualPathForSpeechEnhancement):
    """Audio-only AV-Mamba for speech enhancement; see :class:`DualPathForSpeechEnhancement`."""

    config_class = AVMambaSEConfig
