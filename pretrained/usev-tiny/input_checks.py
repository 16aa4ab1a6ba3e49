"""The input checks of the dual-path models, in one place: each names the problem and the fix in the user's terms
instead of letting a shape error surface deep inside torch."""

from __future__ import annotations

import torch

# a lip video may be one frame shorter or longer than the audio (frame rounding) before it is refused; the
# EleganceProcessor applies the same rule to raw inputs, where it can name the clip to trim
DURATION_TOLERANCE_FRAMES = 1


def check_audio(model, input_values: torch.Tensor, labels: torch.Tensor | None, sampling_rate: int | None) -> None:
    """``input_values`` is ``(batch, samples)`` at the model's rate, at least one encoder window long, and ``labels``
    is aligned with it."""
    expected = model.config.sampling_rate
    if sampling_rate is not None and sampling_rate != expected:
        raise ValueError(
            f"audio is {sampling_rate} Hz, the model expects {expected} Hz; resample it first, e.g. with "
            f"EleganceProcessor(...)(audio=..., sampling_rate={sampling_rate}), which resamples to {expected} Hz"
        )
    if not isinstance(input_values, torch.Tensor) or input_values.dim() != 2:
        shape = tuple(input_values.shape) if isinstance(input_values, torch.Tensor) else type(input_values).__name__
        raise ValueError(
            f"input_values has shape {shape}; expected (batch, samples) of mono audio at {expected} Hz "
            f"(add a batch dimension with input_values[None], average stereo channels)"
        )
    window = model.config.encoder_kernel_size
    if input_values.shape[-1] < window:
        raise ValueError(
            f"input_values has {input_values.shape[-1]} samples, fewer than one encoder window of {window} samples "
            f"({1000 * window / expected:g} ms at {expected} Hz); pass at least {window} samples"
        )
    if labels is not None and labels.shape != input_values.shape:
        raise ValueError(
            f"labels have shape {tuple(labels.shape)} but input_values {tuple(input_values.shape)}; the target "
            f"waveform must be aligned sample by sample with the mixture"
        )


def check_lips(model, input_values, lip_frames, lip_embeds) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Exactly one lip input, of the shape the model takes; returns ``(lip_frames, lip_embeds)`` in the audio's dtype."""
    config = model.config
    if (lip_frames is None) == (lip_embeds is None):
        given = "both lip_frames and lip_embeds" if lip_frames is not None else "neither lip_frames nor lip_embeds"
        raise ValueError(
            f"{type(model).__name__} takes exactly one lip input, got {given}; pass lip_frames "
            f"(batch, frames, {config.lip_roi_size}, {config.lip_roi_size}) or lip_embeds "
            f"(batch, frames, {config.lip_embedding_dim})"
        )
    batch = input_values.shape[0]
    if lip_frames is not None:
        if model.visual_encoder.lip_encoder is None:
            raise ValueError(
                "this model was built for precomputed lip embeddings (lip_input='embeddings') and has no lip "
                "front-end; pass lip_embeds, or build the model with lip_input='frames' to feed mouth ROI clips"
            )
        size = config.lip_roi_size
        if lip_frames.dim() == 5 and lip_frames.shape[2] == 1:
            raise ValueError(
                f"lip_frames has shape {tuple(lip_frames.shape)} with a channel axis; pass grayscale clips as "
                f"(batch, frames, {size}, {size}) (squeeze axis 2)"
            )
        if lip_frames.dim() != 4 or lip_frames.shape[0] != batch or tuple(lip_frames.shape[2:]) != (size, size):
            raise ValueError(
                f"lip_frames has shape {tuple(lip_frames.shape)}; expected (batch={batch}, frames, {size}, {size}) "
                f"grayscale mouth ROIs (the EleganceProcessor resizes clips to lip_roi_size={size})"
            )
        return lip_frames.to(input_values.dtype), None
    dim = config.lip_embedding_dim
    if lip_embeds.dim() != 3 or lip_embeds.shape[0] != batch or lip_embeds.shape[-1] != dim:
        raise ValueError(f"lip_embeds has shape {tuple(lip_embeds.shape)}; expected (batch={batch}, frames, {dim})")
    return None, lip_embeds.to(input_values.dtype)


def check_durations(model, input_values, audio_attention_mask, video_lengths, video_frames: int) -> None:
    """Each row's lip video and audio last as long, within ``DURATION_TOLERANCE_FRAMES``."""
    batch, samples = input_values.shape
    sample_lengths = [samples] * batch if audio_attention_mask is None else audio_attention_mask.sum(-1).tolist()
    frame_lengths = [video_frames] * batch if video_lengths is None else video_lengths.tolist()
    rate, fps = model.config.sampling_rate, model.config.fps
    for row, (audio, video) in enumerate(zip(sample_lengths, frame_lengths)):
        if abs(audio / rate - video / fps) > DURATION_TOLERANCE_FRAMES / fps + 1e-9:
            raise ValueError(
                f"row {row}: the lip video lasts {video / fps:.2f} s ({int(video)} frames at {fps} fps) but the "
                f"audio lasts {audio / rate:.2f} s ({int(audio)} samples at {rate} Hz); pass the lip frames of "
                f"the same span as the audio, at {fps} fps"
            )


def check_prior(model, prior_embeds, prior_attention_mask, batch: int, mixture: torch.Tensor):
    """The linguistic prior fits the model's fusion (zeros stand in when it is omitted); returns
    ``(prior_embeds, prior_attention_mask)``."""
    dim = model.config.prior_embedding_dim
    if dim is None:
        if prior_embeds is not None:
            raise ValueError(
                "prior_embeds were given but this model has no linguistic prior fusion "
                "(config.prior_embedding_dim is None); build it with prior_embedding_dim=<prior width> to use one"
            )
        return None, None
    if prior_embeds is None:
        # no prior at inference: zeros stand in, as in training with text dropout
        return mixture.new_zeros(batch, 1, dim), None
    if prior_embeds.dim() != 3 or prior_embeds.shape[0] != batch or prior_embeds.shape[-1] != dim:
        raise ValueError(f"prior_embeds has shape {tuple(prior_embeds.shape)}; expected (batch={batch}, tokens, {dim})")
    if prior_attention_mask is not None:
        if prior_attention_mask.shape != prior_embeds.shape[:2]:
            raise ValueError(
                f"prior_attention_mask has shape {tuple(prior_attention_mask.shape)}; expected "
                f"{tuple(prior_embeds.shape[:2])}, one entry per prior token"
            )
        empty = (prior_attention_mask.sum(-1) == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"prior_attention_mask marks no token as real in row(s) {empty}; pass prior_embeds=None for "
                f"rows without a prior (zeros stand in) or keep at least one token"
            )
    return prior_embeds.to(mixture.dtype), prior_attention_mask
