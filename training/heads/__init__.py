"""Guidance heads: each reads only what the backbone exposes (``SpeechExtractionOutput``) and the batch."""

from .base import GuidanceHead
from .cmkt import CrossModalKnowledgeTransferHead
from .input_guidance import InputGuidanceHead
from .intermediate_guidance import IntermediateGuidanceHead
from .output_guidance import OutputGuidanceHead

__all__ = [
    "CrossModalKnowledgeTransferHead",
    "GuidanceHead",
    "InputGuidanceHead",
    "IntermediateGuidanceHead",
    "OutputGuidanceHead",
]
