"""Dual-path extraction models: encoder -> [visual cue] -> dual-path extractor -> mask -> decoder.

`DualPathForTargetSpeechExtraction` (audio-visual, the lip video picks the speaker) and
`DualPathForSpeechEnhancement` (audio-only) are shared by USEV and AV-Mamba, which subclass them with their own
config (see ``modeling_usev.py`` and ``modeling_av_mamba.py``).

For the guidance heads of training, the output exposes ``extractor_features (batch, frames, channels)``, the
dual-path blocks' output before the mask head, and ``forward`` accepts an optional linguistic prior
``prior_embeds (batch, tokens, dim)`` when the config enables its fusion. The backbone knows nothing of LLMs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_backbones import DualPathConfig
from .dual_path_extractor import DualPathExtractor
from .input_checks import check_audio, check_durations, check_lips, check_prior
from .lip_encoder import LipEncoder
from .losses import activity_aware_loss, negative_si_sdr_loss
from .normalization import GlobalLayerNorm, apply_mask
from .sequence_models import MambaMixer
from .spectral_codec import StftDecoder, StftEncoder
from .visual_tcn import VisualTCN
from .waveform_codec import WaveformDecoder, WaveformEncoder


@dataclass
class SpeechExtractionOutput(ModelOutput):
    r"""Output of the extraction and enhancement models.

    Args:
        loss: training loss (config ``loss``), when ``labels`` are given.
        waveform: ``(batch, samples)`` extracted speech, zero past each row's length.
        extractor_features: ``(batch, frames, channels)`` dual-path features before the mask head, at the
            encoder frame rate (``sampling_rate / encoder_stride``).
        extractor_attention_mask: ``(batch, frames)``, 1 on real frames.
    """

    loss: torch.Tensor | None = None
    waveform: torch.Tensor | None = None
    extractor_features: torch.Tensor | None = None
    extractor_attention_mask: torch.Tensor | None = None


def padded_lengths(attention_mask: torch.Tensor | None, device) -> torch.Tensor | None:
    """``(batch,)`` real lengths from a ``(batch, positions)`` attention mask, or None when no row is padded (the
    models then skip every masking step: the same result, faster)."""
    if attention_mask is None:
        return None
    lengths = attention_mask.long().sum(-1).to(device)
    return None if bool((lengths == attention_mask.shape[-1]).all()) else lengths


def length_mask(lengths: torch.Tensor | None, size: int) -> torch.Tensor | None:
    """``(batch, size)`` boolean mask of the first ``lengths`` positions, or None for no padding."""
    if lengths is None:
        return None
    return torch.arange(size, device=lengths.device) < lengths[:, None]


class DualPathPreTrainedModel(PreTrainedModel):
    config_class = DualPathConfig
    # the models are flat (encoder, extractor, decoder at the top level): no base-model attribute to name
    base_model_prefix = ""
    main_input_name = "input_values"
    supports_gradient_checkpointing = True
    # the loss is a mean over the batch: Trainer must not rescale it by the number of items
    accepts_loss_kwargs = False
    _no_split_modules = ["DualPathBlock"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        if isinstance(module, MambaMixer):
            module.reset_ssm_parameters()
        elif isinstance(module, GlobalLayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.MultiheadAttention):
            module._reset_parameters()
        elif hasattr(module, "reset_parameters") and type(module).__module__.startswith("torch.nn"):
            module.reset_parameters()  # PyTorch's defaults, guarded by transformers against loaded weights

    def separate(
        self,
        input_values: torch.Tensor,
        audio_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        cue: torch.Tensor | None = None,
        prior_embeds: torch.Tensor | None = None,
        prior_attention_mask: torch.Tensor | None = None,
    ) -> SpeechExtractionOutput:
        """Encode, extract a mask (with the cue already aligned to the encoder frames), apply it, decode, and score
        against ``labels``: what both models run once their inputs are checked.

        Args:
            input_values: ``(batch, samples)`` mixture; audio_attention_mask: ``(batch, samples)``.
            cue: ``(batch, cue channels, frames)`` visual cue at the encoder frames, or None (audio-only).
        """
        batch, samples = input_values.shape
        sample_lengths = padded_lengths(audio_attention_mask, input_values.device)
        sample_mask = length_mask(sample_lengths, samples)
        frame_lengths = None if sample_lengths is None else self.encoder.num_frames(sample_lengths)
        mixture = self.encode(input_values, sample_mask)
        frame_mask = length_mask(frame_lengths, mixture.shape[-1])
        prior_embeds, prior_attention_mask = check_prior(self, prior_embeds, prior_attention_mask, batch, mixture)
        mask, features = self.extractor(
            self.encoder.features(mixture), frame_lengths, cue, prior_embeds, prior_attention_mask
        )
        encoded_estimate = self.mask_mixture(mixture, mask, frame_mask)
        waveform = self.decode(encoded_estimate, samples, sample_mask)
        loss = None if labels is None else self._loss(waveform, apply_mask(labels, sample_mask), sample_mask)
        if frame_mask is None:
            frame_mask = torch.ones(batch, mixture.shape[-1], dtype=torch.long, device=mixture.device)
        return SpeechExtractionOutput(
            loss=loss, waveform=waveform, extractor_features=features, extractor_attention_mask=frame_mask.long()
        )

    def encode(self, input_values: torch.Tensor, sample_mask: torch.Tensor | None) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, encoder_channels, frames)``, padding zeroed first."""
        return self.encoder(apply_mask(input_values, sample_mask))

    def mask_mixture(self, mixture: torch.Tensor, mask: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        """The target's encoding: the mask applied by the encoder's rule (a product; complex for the STFT), both
        ``(batch, mask channels, frames)``, zero past each row's frames."""
        return apply_mask(self.encoder.apply_mask(mixture, mask), None if frame_mask is None else frame_mask[:, None])

    def decode(self, encoded: torch.Tensor, samples: int, sample_mask: torch.Tensor | None) -> torch.Tensor:
        """``(batch, encoder_channels, frames)`` -> ``(batch, samples)``, zero past each row's samples."""
        return apply_mask(self.decoder(encoded, samples), sample_mask)

    def _loss(self, estimate, target, mask):
        if self.config.loss == "activity_aware":
            return activity_aware_loss(
                estimate,
                target,
                mask,
                frame_length=self.config.sampling_rate // 50,
                threshold_db=self.config.activity_threshold_db,
                silence_weight=self.config.silence_penalty_weight,
            )
        return negative_si_sdr_loss(estimate, target, mask)

    def _build_codec_and_extractor(self, config: DualPathConfig, cue_channels: int):
        # built in this order (encoder, extractor, decoder) so a fixed seed gives the weights it always gave
        stft = config.encoder_type == "stft"
        if stft:
            self.encoder = StftEncoder(n_fft=config.encoder_kernel_size, hop=config.encoder_stride)
        else:
            self.encoder = WaveformEncoder(config.encoder_channels, kernel_size=config.encoder_kernel_size)
        self.extractor = DualPathExtractor(
            config,
            cue_channels=cue_channels,
            input_channels=self.encoder.feature_channels,
            mask_channels=self.encoder.mask_channels,
            mask_nonnegative=self.encoder.mask_nonnegative,
        )
        if stft:
            self.decoder = StftDecoder(n_fft=config.encoder_kernel_size, hop=config.encoder_stride)
        else:
            self.decoder = WaveformDecoder(config.encoder_channels, kernel_size=config.encoder_kernel_size)


class DualPathVisualEncoder(nn.Module):
    r"""Lip clips or lip embeddings -> ``(batch, visual_channels, video frames)`` visual cue.

    Owns the lip encoder when ``config.lip_input == "frames"``; always owns the V-TCN.
    """

    def __init__(self, config: DualPathConfig):
        super().__init__()
        self.lip_encoder = LipEncoder(config) if config.lip_input == "frames" else None
        self.tcn = VisualTCN(
            config.lip_embedding_dim,
            channels=config.visual_channels,
            hidden_channels=config.visual_hidden_channels,
            num_blocks=config.visual_num_blocks,
        )

    def forward(self, lip_frames, lip_embeds, video_lengths: torch.Tensor | None) -> torch.Tensor:
        # video_lengths: (batch,) real video frames, None when no row is padded
        if lip_embeds is None:
            lip_embeds = self.lip_encoder(lip_frames, video_lengths)
        mask = length_mask(video_lengths, lip_embeds.shape[1])
        return self.tcn(lip_embeds, None if mask is None else mask[:, None, :])


def align_to_frames(
    cue: torch.Tensor, video_lengths: torch.Tensor | None, frame_lengths: torch.Tensor | None, frames: int
) -> torch.Tensor:
    r"""Stretches the visual cue to the encoder frames by linear interpolation: ``(b, c, video frames) -> (b, c, frames)``.

    Row ``i``'s ``video_lengths[i]`` real video frames are stretched over its ``frame_lengths[i]`` real encoder frames
    exactly as ``F.interpolate(cue, frames, mode="linear")`` does for a row alone (the original USEV's alignment);
    frames past a row's end are zero. Both lengths are None when no row is padded.
    """
    batch, _, video_frames = cue.shape
    if video_lengths is None and frame_lengths is None:
        return F.interpolate(cue, frames, mode="linear")
    sources = cue.new_full((batch,), video_frames) if video_lengths is None else video_lengths.to(cue.dtype)
    targets = cue.new_full((batch,), frames) if frame_lengths is None else frame_lengths.to(cue.dtype)
    # half-pixel centres, as F.interpolate with align_corners=False
    position = (
        (torch.arange(frames, device=cue.device, dtype=cue.dtype)[None, :] + 0.5) * (sources / targets)[:, None] - 0.5
    ).clamp_min(0)
    low = position.floor().long()
    last = (sources.long() - 1)[:, None]
    low = torch.minimum(low, last)
    high = torch.minimum(low + 1, last)
    weight = (position - low.to(cue.dtype))[:, None, :]
    channels = cue.shape[1]
    aligned = cue.gather(2, low[:, None, :].expand(-1, channels, -1)) * (1 - weight)
    aligned = aligned + cue.gather(2, high[:, None, :].expand(-1, channels, -1)) * weight
    return apply_mask(aligned, length_mask(frame_lengths, frames)[:, None] if frame_lengths is not None else None)


class DualPathForTargetSpeechExtraction(DualPathPreTrainedModel):
    r"""Audio-visual target speech extraction: the mixture and the target's lips in, the target's speech out."""

    def __init__(self, config: DualPathConfig):
        super().__init__(config)
        if config.lip_input is None:
            raise ValueError(
                f"{type(self).__name__} needs a lip input; set lip_input='frames' or 'embeddings' (a config with "
                f"lip_input=None is for the audio-only ...ForSpeechEnhancement models)"
            )
        self.visual_encoder = DualPathVisualEncoder(config)
        self._build_codec_and_extractor(config, cue_channels=config.visual_channels)
        self.post_init()
        # a model built from scratch starts from the pretrained lip encoder; from_pretrained builds on the meta
        # device and then loads the saved weights, which already hold it
        if config.lip_encoder is not None and self.visual_encoder.tcn.project.weight.device.type != "meta":
            from .modeling_lip_reading import load_lip_encoder_state_dict

            self.visual_encoder.lip_encoder.load_state_dict(load_lip_encoder_state_dict(config.lip_encoder, config))

    def forward(
        self,
        input_values: torch.Tensor,
        lip_frames: torch.Tensor | None = None,
        lip_embeds: torch.Tensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        video_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        prior_embeds: torch.Tensor | None = None,
        prior_attention_mask: torch.Tensor | None = None,
        sampling_rate: int | None = None,
        return_dict: bool | None = None,
    ) -> SpeechExtractionOutput | tuple:
        r"""
        Args:
            input_values: ``(batch, samples)`` mixture at ``config.sampling_rate``.
            lip_frames: ``(batch, video frames, lip_roi_size, lip_roi_size)`` normalised mouth ROIs (the
                processor's ``lip_frames``); or
            lip_embeds: ``(batch, video frames, lip_embedding_dim)`` precomputed lip embeddings. Exactly one.
            audio_attention_mask: ``(batch, samples)``, 1 on real samples.
            video_attention_mask: ``(batch, video frames)``, 1 on real frames.
            labels: ``(batch, samples)`` target speech; gives ``loss``.
            prior_embeds: ``(batch, tokens, prior_embedding_dim)`` linguistic prior, only when the config enables
                its fusion (zeros stand in when omitted).
            prior_attention_mask: ``(batch, tokens)``, 1 on real prior tokens.
            sampling_rate: rate of ``input_values``, checked against the model's when given.
        """
        check_audio(self, input_values, labels, sampling_rate)
        lip_frames, lip_embeds = check_lips(self, input_values, lip_frames, lip_embeds)
        lips = lip_frames if lip_frames is not None else lip_embeds
        video_lengths = padded_lengths(video_attention_mask, lips.device)
        check_durations(self, input_values, audio_attention_mask, video_lengths, lips.shape[1])
        cue = self.visual_encoder(lip_frames, lip_embeds, video_lengths)
        sample_lengths = padded_lengths(audio_attention_mask, input_values.device)
        frame_lengths = None if sample_lengths is None else self.encoder.num_frames(sample_lengths)
        cue = align_to_frames(cue, video_lengths, frame_lengths, self.encoder.num_frames(input_values.shape[-1]))
        output = self.separate(input_values, audio_attention_mask, labels, cue, prior_embeds, prior_attention_mask)
        return output if return_dict is not False else output.to_tuple()


class DualPathForSpeechEnhancement(DualPathPreTrainedModel):
    r"""Audio-only speech enhancement (CMKT's setting): the same backbone without the visual path."""

    def __init__(self, config: DualPathConfig):
        super().__init__(config)
        self._build_codec_and_extractor(config, cue_channels=0)
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor,
        audio_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        prior_embeds: torch.Tensor | None = None,
        prior_attention_mask: torch.Tensor | None = None,
        sampling_rate: int | None = None,
        return_dict: bool | None = None,
        lip_frames: torch.Tensor | None = None,
        lip_embeds: torch.Tensor | None = None,
    ) -> SpeechExtractionOutput | tuple:
        r"""Same arguments as the extraction model without the lips: ``input_values (batch, samples)`` noisy
        speech, ``labels (batch, samples)`` clean speech."""
        if lip_frames is not None or lip_embeds is not None:
            raise ValueError(
                f"{type(self).__name__} is audio-only and takes no lip_frames or lip_embeds; use the "
                f"...ForTargetSpeechExtraction model for audio-visual extraction"
            )
        check_audio(self, input_values, labels, sampling_rate)
        output = self.separate(input_values, audio_attention_mask, labels, None, prior_embeds, prior_attention_mask)
        return output if return_dict is not False else output.to_tuple()
