"""The frozen pre-trained speech language model (PSLM) of output guidance: any Hugging Face speech encoder by name
or path (HuBERT, wav2vec2, WavLM, a folder written by ``elegance-pretrain-pslm``, or a Whisper, whose encoder
``whisper_speech_encoder`` runs)."""

from __future__ import annotations

import json
import os

import torch
from torch import nn

from .language_model import freeze
from .whisper_speech_encoder import WhisperSpeechEncoder


class SpeechEncoder(nn.Module):
    r"""``(batch, samples)`` 16 kHz waveform -> ``(batch, frames, hidden)`` hidden states and ``(batch, frames)`` mask.

    Differentiable in its input (the gradient of output guidance flows through it into the extractor); its own
    weights are frozen. Waveforms are normalised per utterance when the encoder's feature extractor says so.
    """

    def __init__(self, model: nn.Module, normalize: bool):
        super().__init__()
        self.model = model
        self.normalize = normalize

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @classmethod
    def from_pretrained(cls, name_or_path: str) -> SpeechEncoder | WhisperSpeechEncoder:
        from transformers import AutoConfig, AutoModel

        try:
            config = AutoConfig.from_pretrained(name_or_path)
        except OSError as error:
            raise OSError(
                f"cannot load the PSLM {name_or_path!r}: pass a local folder or a Hub id (with the Hub reachable), "
                f"or pretrain one offline with `elegance-pretrain-pslm --data DATA --output_dir DIR`"
            ) from error
        if config.model_type == "whisper":
            return WhisperSpeechEncoder.from_pretrained(name_or_path)
        if not hasattr(config, "conv_dim"):
            raise ValueError(
                f"{name_or_path} is a {config.model_type} model, not a speech encoder; pass a Whisper, HuBERT, "
                f"wav2vec2 or WavLM model, or a folder written by elegance-pretrain-pslm"
            )
        model = AutoModel.from_pretrained(name_or_path, dtype=torch.float32)
        normalize = False
        preprocessor = os.path.join(name_or_path, "preprocessor_config.json")
        if os.path.exists(preprocessor):
            with open(preprocessor) as stream:
                normalize = bool(json.load(stream).get("do_normalize", False))
        return cls(freeze(model).eval(), normalize)

    def forward(self, waveform: torch.Tensor, sample_mask: torch.Tensor | None = None):
        if self.normalize:
            weights = torch.ones_like(waveform) if sample_mask is None else sample_mask.to(waveform.dtype)
            count = weights.sum(-1, keepdim=True).clamp_min(1.0)
            mean = (waveform * weights).sum(-1, keepdim=True) / count
            variance = (((waveform - mean) * weights) ** 2).sum(-1, keepdim=True) / count
            waveform = (waveform - mean) / torch.sqrt(variance + 1e-7) * weights
        hidden = self.model(waveform).last_hidden_state  # (batch, frames, hidden)
        if sample_mask is None:
            return hidden, None
        lengths = self.model._get_feat_extract_output_lengths(sample_mask.long().sum(-1))
        frame_mask = torch.arange(hidden.shape[1], device=hidden.device) < lengths[:, None]
        return hidden, frame_mask
