"""The lip-reading model of ``elegance-pretrain-lips``: a :class:`LipEncoder` and a per-frame phone classifier.

It exists to pretrain the lip encoder of the extraction backbones on lip reading, as USEV and every strong AV-TSE
system start from a visual front-end pretrained that way; a backbone built with ``lip_encoder=FOLDER`` starts
from its ``encoder`` weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_lip_reading import LipReadingConfig
from .lip_encoder import LipEncoder
from .modeling_dual_path import DualPathPreTrainedModel, length_mask, padded_lengths


@dataclass
class LipReadingOutput(ModelOutput):
    r"""
    Args:
        loss: mean cross-entropy over the labelled frames, when ``labels`` are given.
        logits: ``(batch, frames, num_phonemes)`` per-frame phone scores.
        embeddings: ``(batch, frames, lip_embedding_dim)`` the lip encoder's output (what a backbone reads).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None


class LipReadingPreTrainedModel(PreTrainedModel):
    config_class = LipReadingConfig
    base_model_prefix = "lip_reading"
    main_input_name = "lip_frames"
    accepts_loss_kwargs = False
    _init_weights = DualPathPreTrainedModel._init_weights


class LipReadingModel(LipReadingPreTrainedModel):
    r"""Mouth ROI clips -> per-frame phone logits and lip embeddings."""

    def __init__(self, config: LipReadingConfig):
        super().__init__(config)
        self.encoder = LipEncoder(config)
        self.classifier = nn.Linear(config.lip_embedding_dim, config.num_phonemes)
        self.post_init()

    def forward(
        self,
        lip_frames: torch.Tensor,
        video_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> LipReadingOutput | tuple:
        r"""
        Args:
            lip_frames: ``(batch, frames, lip_roi_size, lip_roi_size)`` normalised mouth ROIs (the processor's).
            video_attention_mask: ``(batch, frames)``, 1 on real frames.
            labels: ``(batch, frames)`` phone indices into ``config.phonemes``, -100 where not scored.
        """
        size = self.config.lip_roi_size
        if lip_frames.dim() != 4 or tuple(lip_frames.shape[2:]) != (size, size):
            raise ValueError(
                f"lip_frames has shape {tuple(lip_frames.shape)}; expected (batch, frames, {size}, {size}) grayscale "
                f"mouth ROIs (the EleganceProcessor resizes clips to lip_roi_size={size})"
            )
        lengths = padded_lengths(video_attention_mask, lip_frames.device)
        mask = length_mask(lengths, lip_frames.shape[1])
        embeddings = self.encoder(lip_frames, lengths)
        logits = self.classifier(embeddings)
        loss = None
        if labels is not None:
            if labels.shape != logits.shape[:2]:
                raise ValueError(
                    f"labels have shape {tuple(labels.shape)}; expected one phone index per frame, {tuple(logits.shape[:2])}"
                )
            if mask is not None:
                labels = labels.masked_fill(~mask, -100)
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        output = LipReadingOutput(loss=loss, logits=logits, embeddings=embeddings)
        return output if return_dict is not False else output.to_tuple()


LIP_ENCODER_FIELDS = ("lip_frontend_width", "lip_embedding_dim", "lip_temporal_layers", "lip_roi_size")


def lip_encoder_config_overrides(folder: str) -> dict:
    """The backbone config fields that make its lip encoder the one saved in ``folder`` (a lip-reading model)."""
    import json
    import os

    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise FileNotFoundError(
            f"lip_encoder={folder!r} is not a saved lip-reading model (no config.json); make one with "
            f"`elegance-pretrain-lips --data DATA --output_dir DIR` and pass DIR/lip-reader"
        )
    with open(os.path.join(folder, "config.json")) as stream:
        model_type = json.load(stream).get("model_type")
    if model_type != LipReadingConfig.model_type:
        raise ValueError(f"{folder} holds a {model_type!r} model, not a lip-reading model (elegance-pretrain-lips)")
    config = LipReadingConfig.from_pretrained(folder)
    return {name: getattr(config, name) for name in LIP_ENCODER_FIELDS} | {"lip_input": "frames", "lip_encoder": folder}


def load_lip_encoder_state_dict(folder: str, config) -> dict[str, torch.Tensor]:
    """The ``encoder`` weights of the lip-reading model in ``folder``, named as a :class:`LipEncoder`'s; ``config``
    (the backbone's) must have the same lip-encoder sizes."""
    import os

    from safetensors.torch import load_file

    saved = lip_encoder_config_overrides(folder)
    different = {
        name: (getattr(config, name), saved[name])
        for name in LIP_ENCODER_FIELDS
        if getattr(config, name) != saved[name]
    }
    if different:
        listing = ", ".join(
            f"{name}={mine} (the lip reader has {theirs})" for name, (mine, theirs) in different.items()
        )
        raise ValueError(
            f"the model's lip encoder does not match the lip reader in {folder}: {listing}; build the config with "
            f"preset_config(..., lip_encoder={folder!r}), which copies its sizes"
        )
    weights = load_file(os.path.join(folder, "model.safetensors"))
    return {name[len("encoder.") :]: tensor for name, tensor in weights.items() if name.startswith("encoder.")}
