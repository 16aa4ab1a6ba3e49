"""Model cards for released elegance models: Jinja templates rendered through `huggingface_hub.ModelCard`."""

from .model_card import BACKBONE_TEMPLATE, card_kind, evaluation_results, render_model_card, render_recognition_card

__all__ = ["BACKBONE_TEMPLATE", "card_kind", "evaluation_results", "render_model_card", "render_recognition_card"]
