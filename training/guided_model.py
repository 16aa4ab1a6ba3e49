"""`GuidedModel`: a backbone and its guidance heads, the module the Trainer optimises.

``loss = w_main * L_extraction + sum_h w_h * L_h``. The output keeps every component for logging. Frozen parts of
the heads (LLM, PSLM) stay in eval mode whatever ``train()`` says and are left out of ``checkpoint_state_dict``:
a checkpoint holds the backbone and every trainable guidance weight, nothing the pretrained models already hold.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput

from .heads import GuidanceHead


@dataclass
class GuidedOutput(ModelOutput):
    r"""``loss`` (weighted sum), ``components`` (name -> unweighted loss, detached), ``waveform (batch, samples)``."""

    loss: torch.Tensor | None = None
    components: dict | None = None
    waveform: torch.Tensor | None = None


class GuidedModel(nn.Module):
    r"""
    Args:
        backbone: a ``...ForTargetSpeechExtraction`` or ``...ForSpeechEnhancement`` model.
        heads: the enabled guidance heads.
        weights: head name -> weight of its loss.
        extraction_weight: weight of the backbone's own loss.
    """

    def __init__(
        self, backbone: nn.Module, heads: list[GuidanceHead], weights: dict[str, float], extraction_weight: float = 1.0
    ):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict({head.name: head for head in heads})
        self.weights = dict(weights)
        self.extraction_weight = extraction_weight
        self._backbone_arguments = set(inspect.signature(backbone.forward).parameters)
        self.main_input_name = backbone.main_input_name

    def forward(self, labels: torch.Tensor | None = None, **batch) -> GuidedOutput:
        backbone_inputs = {name: value for name, value in batch.items() if name in self._backbone_arguments}
        for head in self.heads.values():
            backbone_inputs.update(head.backbone_inputs(batch))
        output = self.backbone(**backbone_inputs, labels=labels)
        components = {"extraction": output.loss.detach()} if output.loss is not None else {}
        loss = None if output.loss is None else self.extraction_weight * output.loss
        for name, head in self.heads.items():
            head_loss = head(output, batch)
            if head_loss is None:
                continue
            components[name] = head_loss.detach()
            loss = self.weights[name] * head_loss if loss is None else loss + self.weights[name] * head_loss
        return GuidedOutput(loss=loss, components=components, waveform=output.waveform)

    def train(self, mode: bool = True):
        super().train(mode)
        for head in self.heads.values():
            for name in head.frozen_modules:
                getattr(head, name).eval()  # no dropout in the frozen LLM / PSLM
        for module in self.backbone.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                p.requires_grad for p in module.parameters()
            ):
                module.eval()  # a frozen batch norm (the pretrained lip encoder's) keeps its running statistics
        return self

    def _frozen_prefixes(self) -> tuple[str, ...]:
        return tuple(f"heads.{head.name}.{name}." for head in self.heads.values() for name in head.frozen_modules)

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen pretrained weights (trainable parameters inside frozen models are kept)."""
        frozen = self._frozen_prefixes()
        trainable = {name for name, parameter in self.named_parameters() if parameter.requires_grad}
        return {
            name: tensor
            for name, tensor in self.state_dict().items()
            if not name.startswith(frozen) or name in trainable
        }

    def load_checkpoint_state_dict(self, state_dict: dict[str, torch.Tensor]):
        """Load what :meth:`checkpoint_state_dict` wrote; any other difference is an error."""
        expected = set(self.checkpoint_state_dict())
        missing, unexpected = sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)
        if missing or unexpected:
            raise ValueError(
                f"the checkpoint does not match this model (missing {missing[:5]}, unexpected {unexpected[:5]}); "
                f"resume with the same --backbone, --guidance and LLM/PSLM as the run that wrote it"
            )
        self.load_state_dict(state_dict, strict=False)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None):
        self.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)
