"""AVUR-LLM's first stage: Whisper with sparse modality alignment (SMA) and adaptive modulated fusion (AMF).

- **SMA.** A visual stream (the per-frame visual features, projected to Whisper's width, at Whisper's positional
  embeddings of the same instants) passes through an alignment block after each of a few *upper* Whisper encoder
  layers: it reads that layer's audio hidden states by cross-attention (visual queries, audio keys/values) with the
  audio **detached**, so no gradient of the visual path reaches the audio encoder, then a feed-forward.
- **AMF.** In the decoder, an acoustic probe (one multi-head attention over the audio encoder's output that reads
  the input of Whisper's last cross-attention, initialised from that attention, so it starts as Whisper's own
  attention) measures how spread its attention is: the
  entropy, normalised by its maximum, is the token's acoustic *unreliability* u (its complement, the reliability,
  is returned for logging: low in noise). The decoder state reads the aligned visual stream by cross-attention, and
  ``h + tanh(gate) * u * read`` injects it; ``gate`` starts at 0, so the untrained model is Whisper exactly.

Whisper itself is unchanged: the blocks are attached with forward hooks on its encoder layers and its decoder, so
any Whisper checkpoint works, `generate` (greedy, beams) works as Whisper's does (the N-best by generation's own beam
search, which Whisper's `generate` does not give; see :meth:`AvurForConditionalGeneration.generate`), and the
visual stream is simply absent for audio-only input.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from transformers import GenerationConfig, GenerationMixin, PreTrainedModel, WhisperForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput

from .beam_search_cache import BeamSharedCrossAttentionCache
from .configuration_avur import AvurConfig
from .lip_encoder import LipEncoder


@dataclass
class AvurOutput(ModelOutput):
    """``loss`` (next-token cross-entropy when ``labels`` are given), ``logits`` ``(batch, tokens, vocabulary)``,
    ``acoustic_reliability`` ``(batch, tokens)`` in [0, 1] and ``visual_hidden_states`` ``(batch, frames, d_model)``,
    the visual stream after the last alignment block (both None without a visual stream); ``auxiliary_loss``, in
    training with ``config.fusion_auxiliary_weight > 0``, the open-gate loss (already added to ``loss`` with that
    weight; :meth:`AvurForConditionalGeneration.open_gate_loss`)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    acoustic_reliability: torch.Tensor | None = None
    visual_hidden_states: torch.Tensor | None = None
    auxiliary_loss: torch.Tensor | None = None


class SparseAlignmentBlock(nn.Module):
    r"""``visual (batch, frames, d)`` reads ``audio (batch, audio_frames, d)``, which it never sends gradient to:
    ``v + attention(norm(v), audio)``, then ``v + ffn(norm(v))``. With ``output_norm``, each of the two additions
    is normalised first (``v + norm(attention(...))``, ``v + norm(ffn(...))``; `AvurConfig.sma_output_norm`)."""

    def __init__(self, width: int, num_heads: int, ffn_dim: int, output_norm: bool = False):
        super().__init__()
        self.attention_norm = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, num_heads, batch_first=True)
        self.ffn_norm = nn.LayerNorm(width)
        self.ffn = nn.Sequential(nn.Linear(width, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, width))
        self.read_output_norm = nn.LayerNorm(width) if output_norm else nn.Identity()
        self.ffn_output_norm = nn.LayerNorm(width) if output_norm else nn.Identity()

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        audio = audio.detach()  # stop-gradient: the alignment refines the visual stream, never the audio encoder
        query = self.attention_norm(visual)
        read, _ = self.attention(query, audio, audio, need_weights=False)
        visual = visual + self.read_output_norm(read)
        return visual + self.ffn_output_norm(self.ffn(self.ffn_norm(visual)))


class AdaptiveModulatedFusion(nn.Module):
    r"""``hidden (batch, tokens, d)`` -> fused ``(batch, tokens, d)`` and reliability ``(batch, tokens)``.

    How a token reads the aligned visual stream (``aligned_read``):
    - False: a learned cross-attention from the decoder state to the visual stream (it must learn where in time
      each token is);
    - True: the acoustic probe's own attention over the audio frames (averaged over its heads) pools the visual
      stream at the same instants, each 50-per-second audio frame taking the 25-fps video frame of its time, then
      a linear map: the token reads the lips where it listens.
    """

    def __init__(
        self, width: int, num_heads: int, probe_heads: int, modulated: bool = True, aligned_read: bool = False
    ):
        super().__init__()
        self.modulated = modulated  # False: the ablation without AMF, the gate alone scales the visual read
        self.aligned_read = aligned_read
        self.num_heads = probe_heads  # the probe's heads are those of Whisper's cross-attention it starts from
        self.probe_query = nn.Linear(width, width)
        self.probe_key = nn.Linear(width, width, bias=False)
        self.visual_norm = nn.LayerNorm(width)
        if aligned_read:
            self.visual_value = nn.Linear(width, width)
        else:
            self.visual_read = nn.MultiheadAttention(width, num_heads, batch_first=True)
        self.gate = nn.Parameter(torch.zeros(width))  # tanh(0) = 0: closed at the start

    def probe_parameters(self) -> list[nn.Parameter]:
        """The acoustic probe's weights (its query and key maps)."""
        return [*self.probe_query.parameters(), *self.probe_key.parameters()]

    def freeze_probe(self) -> None:
        """Keeps the probe at what it starts as, Whisper's cross-attention, in training (``elegance-train-avsr
        --freeze_acoustic_probe``): trained with the fusion, it sharpens until the unreliability that scales the
        visual injection is near 0 (docs/results.md)."""
        for parameter in self.probe_parameters():
            parameter.requires_grad_(False)

    def probe_attention(self, hidden, audio, audio_mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The probe's attention ``(batch, heads, tokens, frames)`` over the audio frames and its entropy
        ``(batch, tokens)``, normalised by its maximum and averaged over heads. With ``audio_mask`` ``(batch, frames)``
        (each clip's frames first, as Whisper pads), only the clip's frames count, and ``frames`` stops at the longest
        clip: Whisper's 30-s window is mostly padding for short clips, and the probe projects it at every decoding
        step (measured, offline tiny.en with SMA and AMF, 4 clips of 3 s, beam 5, one thread on a loaded machine: 161
        s of decoding with the whole window, 124 s with the clips' frames; most of the rest is Whisper's own
        cross-attention over its 1,500 frames and the beam search's reordering of that cache)."""
        batch, tokens, width = hidden.shape
        head_dim = width // self.num_heads
        if audio_mask is not None:  # frames past every clip's end get no weight: skip projecting them at all
            longest = int(audio_mask.sum(-1).max())
            audio, audio_mask = audio[:, :longest], audio_mask[:, :longest]
        query = self.probe_query(hidden).view(batch, tokens, self.num_heads, head_dim).transpose(1, 2)
        key = self.probe_key(audio).view(batch, audio.shape[1], self.num_heads, head_dim).transpose(1, 2)
        logits = query @ key.transpose(-1, -2) / math.sqrt(head_dim)  # (batch, heads, tokens, frames)
        frames = torch.full((batch,), float(audio.shape[1]), device=hidden.device)
        if audio_mask is not None:
            logits = logits.masked_fill(~audio_mask[:, None, None, :].bool(), float("-inf"))
            frames = audio_mask.sum(-1).float()
        log_weights = logits.log_softmax(-1)
        weights = log_weights.exp()
        entropy = -(weights * log_weights.masked_fill(weights == 0, 0.0)).sum(-1).mean(1)  # (batch, tokens)
        return weights, entropy / torch.log(frames.clamp_min(2.0))[:, None]

    def acoustic_reliability(self, hidden, audio, audio_mask=None) -> torch.Tensor:
        """1 - the probe's normalised attention entropy (:meth:`probe_attention`), ``(batch, tokens)``."""
        return 1.0 - self.probe_attention(hidden, audio, audio_mask)[1]

    @staticmethod
    def visual_at_audio_frames(visual: torch.Tensor, audio_frames: int) -> torch.Tensor:
        """``(batch, video frames, d)`` at 25 fps -> ``(batch, audio_frames, d)`` at Whisper's 50 per second: each
        audio frame takes the video frame of its instant, zeros after the video's end."""
        index = torch.arange(audio_frames, device=visual.device) // 2
        inside = index < visual.shape[1]
        return visual[:, index.clamp_max(visual.shape[1] - 1)] * inside[None, :, None].to(visual.dtype)

    def forward(self, hidden, audio, visual, visual_keep=None, audio_mask=None, probe_input=None, open_gate=False):
        """``(fused, reliability, opened)``: the decoder state with the visual injection ``(batch, tokens, d)``, the
        acoustic reliability ``(batch, tokens)``, and with ``open_gate`` the state with the injection at full
        strength (the gate bypassed; None otherwise). ``probe_input`` ``(batch, tokens, d)``: what the acoustic probe
        reads (the input of Whisper's last cross-attention); ``hidden`` when None."""
        weights, unreliability = self.probe_attention(hidden if probe_input is None else probe_input, audio, audio_mask)
        memory = self.visual_norm(visual)
        if self.aligned_read:
            read = self.visual_value(weights.mean(1) @ self.visual_at_audio_frames(memory, weights.shape[-1]))
        else:
            read, _ = self.visual_read(hidden, memory, memory, need_weights=False)
        injection, opened = torch.tanh(self.gate) * read, (read if open_gate else None)
        if self.modulated:
            injection = injection * unreliability[..., None]
            opened = None if opened is None else opened * unreliability[..., None]
        if visual_keep is not None:  # modality dropout: these examples hear only the audio
            keep = visual_keep[:, None, None].to(injection.dtype)
            injection, opened = injection * keep, (None if opened is None else opened * keep)
        return hidden + injection, 1.0 - unreliability, (None if opened is None else hidden + opened)


def _expand_to(tensor: torch.Tensor | None, batch: int) -> torch.Tensor | None:
    """Each example repeated where `generate` repeats it (beams, ``num_return_sequences``): ``(batch, ...)``."""
    if tensor is None or tensor.shape[0] == batch:
        return tensor
    if batch % tensor.shape[0]:
        raise ValueError(f"cannot match {tensor.shape[0]} visual streams to a batch of {batch}")
    return tensor.repeat_interleave(batch // tensor.shape[0], 0)


class AvurForConditionalGeneration(PreTrainedModel):
    r"""Whisper + SMA + AMF. ``input_features`` ``(batch, mel bins, 3000)`` are Whisper's; ``visual_embeds``
    ``(batch, frames, visual_dim)`` the per-frame visual features at 25 fps (None: audio only, exactly Whisper)."""

    config_class = AvurConfig
    base_model_prefix = "avur"
    main_input_name = "input_features"
    _no_split_modules = ["WhisperEncoderLayer", "WhisperDecoderLayer", "SparseAlignmentBlock"]

    def __init__(self, config: AvurConfig):
        super().__init__(config)
        whisper_config = config.whisper_config
        width = whisper_config.d_model
        self.whisper = WhisperForConditionalGeneration(whisper_config)
        if config.whisper_generation_config:
            self.whisper.generation_config = GenerationConfig.from_dict(config.whisper_generation_config)
        self.lip_encoder = LipEncoder(config) if config.lip_input == "frames" else None
        self.visual_projection = nn.Linear(config.visual_dim, width)
        self.alignment = nn.ModuleList(
            SparseAlignmentBlock(width, config.sma_num_heads, config.sma_ffn_dim, config.sma_output_norm)
            for _ in config.sma_layers
        )
        self.fusion = AdaptiveModulatedFusion(
            width,
            config.sma_num_heads,
            whisper_config.decoder_attention_heads,
            modulated=config.fusion_modulation == "reliability",
            aligned_read=config.fusion_read == "aligned",
        )
        self._visual_state: dict | None = None
        encoder_layers = self.whisper.model.encoder.layers
        for block_index, layer_index in enumerate(config.sma_layers):
            encoder_layers[layer_index].register_forward_hook(self._alignment_hook(block_index))
        # the acoustic probe reads what the fusion layer's cross-attention reads (that layer's normalised decoder
        # state), so at the start its attention, and the reliability, are Whisper's own
        decoder = self.whisper.model.decoder
        decoder.layers[self.fusion_layer_index].encoder_attn.register_forward_pre_hook(self._probe_input_hook)
        if config.fusion_layer is None:
            decoder.register_forward_hook(self._fusion_hook, with_kwargs=True)
        else:
            decoder.layers[config.fusion_layer].register_forward_hook(self._layer_fusion_hook, with_kwargs=True)
        self.post_init()

    @property
    def fusion_layer_index(self) -> int:
        """The decoder layer whose cross-attention the probe starts from: the fusion layer, or the last."""
        return -1 if self.config.fusion_layer is None else self.config.fusion_layer

    def _init_weights(self, module):
        if isinstance(module, AdaptiveModulatedFusion):
            nn.init.zeros_(module.gate)

    # -- the hooks: they act only inside `_visual_context`, and only when there is a visual stream
    def _alignment_hook(self, block_index: int):
        def hook(layer, inputs, output):
            state = self._visual_state
            if state is None:
                return
            audio = output[0] if isinstance(output, tuple) else output
            if "captured" in state:  # encode_audio: keep what the block would read
                state["captured"][block_index] = audio
            if state.get("visual") is not None:
                visual, state["keep"] = (
                    _expand_to(state["visual"], audio.shape[0]),
                    _expand_to(state["keep"], audio.shape[0]),
                )
                state["visual"] = self.alignment[block_index](visual, audio)

        return hook

    def _probe_input_hook(self, attention, args):
        state = self._visual_state
        if state is not None and state.get("visual") is not None:
            state["probe_input"] = args[0]

    def _fuse(self, state: dict, hidden: torch.Tensor, audio: torch.Tensor):
        """AMF on the decoder state ``hidden`` ``(batch, tokens, d)``: ``(fused, opened)``, the reliability logged."""
        visual, keep = _expand_to(state["visual"], hidden.shape[0]), _expand_to(state["keep"], hidden.shape[0])
        audio_mask = _expand_to(state["audio_mask"], hidden.shape[0])
        open_gate = self.training and self.config.fusion_auxiliary_weight > 0
        fused, reliability, opened = self.fusion(
            hidden, audio, visual, keep, audio_mask, probe_input=state.pop("probe_input"), open_gate=open_gate
        )
        state["reliability"].append(reliability)
        return fused, opened

    def _fusion_hook(self, decoder, args, kwargs, output):
        state = self._visual_state
        if state is None or state.get("visual") is None:
            return output
        output.last_hidden_state, state["opened"] = self._fuse(
            state, output.last_hidden_state, kwargs["encoder_hidden_states"]
        )
        return output

    def _layer_fusion_hook(self, layer, args, kwargs, output):
        """AMF after decoder layer ``config.fusion_layer`` (called as ``layer(hidden, causal_mask, audio, ...)``).
        For the open-gate loss, the state with the injection at full strength goes through the remaining layers and
        the decoder's final norm (training only: no cache)."""
        state = self._visual_state
        if state is None or state.get("visual") is None:
            return output
        audio = args[2] if len(args) > 2 else kwargs["encoder_hidden_states"]
        fused, opened = self._fuse(state, output, audio)
        if opened is not None:
            decoder = self.whisper.model.decoder
            causal_mask = args[1] if len(args) > 1 else kwargs.get("attention_mask")
            for later in decoder.layers[self.config.fusion_layer + 1 :]:
                opened = later(opened, causal_mask, audio, encoder_attention_mask=None, cache=None, use_cache=False)
            opened = decoder.layer_norm(opened)
        state["opened"] = opened
        return fused

    def visual_stream(self, visual_embeds: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, visual_dim)`` at 25 fps -> ``(batch, frames, d_model)`` with the Whisper encoder's
        positional embedding of the same instant (its frames are at 50 per second)."""
        frames = visual_embeds.shape[1]
        positions = self.whisper.model.encoder.embed_positions.weight
        if 2 * (frames - 1) >= positions.shape[0]:
            raise ValueError(
                f"visual_embeds has {frames} frames; Whisper's window holds {positions.shape[0] // 2} frames at 25 fps"
            )
        at = torch.arange(frames, device=visual_embeds.device) * 2
        return self.visual_projection(visual_embeds) + positions[at].detach()

    @staticmethod
    def audio_frame_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """Whisper's feature-frame mask ``(batch, 3000)`` (`WhisperFeatureExtractor(..., return_attention_mask=True)`)
        -> the encoder-frame mask ``(batch, 1500)`` of the clip's own frames (the encoder halves the rate)."""
        if attention_mask is None:
            return None
        lengths = (attention_mask.long().sum(-1) + 1) // 2
        return torch.arange(attention_mask.shape[-1] // 2, device=attention_mask.device) < lengths[:, None]

    @contextmanager
    def _visual_context(self, visual_embeds: torch.Tensor | None, attention_mask: torch.Tensor | None = None):
        if visual_embeds is not None and (visual_embeds.ndim != 3 or visual_embeds.shape[-1] != self.config.visual_dim):
            raise ValueError(
                f"visual_embeds has shape {tuple(visual_embeds.shape)}; expected (batch, frames, "
                f"{self.config.visual_dim}) per-frame visual features at 25 fps"
            )
        keep = None
        if visual_embeds is not None and self.training and self.config.modality_dropout > 0:
            keep = torch.rand(visual_embeds.shape[0], device=visual_embeds.device) >= self.config.modality_dropout
        visual = None if visual_embeds is None else self.visual_stream(visual_embeds)
        self._visual_state = {
            "visual": visual,
            "keep": keep,
            "audio_mask": self.audio_frame_mask(attention_mask),
            "reliability": [],
        }
        try:
            yield self._visual_state
        finally:
            self._visual_state = None

    def embed_lips(
        self, lip_frames: torch.Tensor | None, video_attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """``(batch, frames, size, size)`` normalised mouth ROIs -> ``(batch, frames, visual_dim)`` by the model's
        own lip encoder (``lip_input="frames"``)."""
        if lip_frames is None:
            return None
        if self.lip_encoder is None:
            raise ValueError(
                "this model takes visual_embeds (lip_input='embeddings'), not lip_frames; build it with "
                "from_whisper(..., lip_reader=FOLDER) to read mouth ROI clips"
            )
        size = self.config.lip_roi_size
        if lip_frames.dim() != 4 or tuple(lip_frames.shape[2:]) != (size, size):
            raise ValueError(
                f"lip_frames has shape {tuple(lip_frames.shape)}; expected (batch, frames, {size}, {size}) grayscale "
                f"mouth ROIs (the processor resizes clips to lip_roi_size={size})"
            )
        lengths = None if video_attention_mask is None else video_attention_mask.long().sum(-1)
        return self.lip_encoder(lip_frames, lengths)

    @torch.no_grad()
    def encode_audio(self, input_features: torch.Tensor) -> torch.Tensor:
        """What the frozen Whisper encoder gives the rest of the model: ``(batch, len(sma_layers) + 1, frames,
        d_model)``, the output of each alignment layer (in ``config.sma_layers`` order) then the encoder's output.
        With Whisper frozen it depends on the audio alone, so training can compute it once per clip and pass it back
        as ``forward(audio_states=...)`` (``training/whisper_state_cache.py``)."""
        self._visual_state = {"visual": None, "captured": {}}
        try:
            last = self.whisper.model.encoder(input_features).last_hidden_state
            captured = self._visual_state["captured"]
        finally:
            self._visual_state = None
        return torch.stack([captured[index] for index in range(len(self.alignment))] + [last], dim=1)

    def _read_audio_states(self, state: dict, audio_states: torch.Tensor) -> BaseModelOutput:
        """What the encoder would have done, from its states (:meth:`encode_audio`): the alignment blocks read the
        layer states, and the encoder's output ``(batch, frames, d_model)`` is returned for the decoder."""
        expected = len(self.alignment) + 1
        if audio_states.dim() != 4 or audio_states.shape[1] != expected:
            raise ValueError(
                f"audio_states has shape {tuple(audio_states.shape)}; expected (batch, {expected}, frames, "
                f"d_model) from encode_audio (one state per alignment layer, then the encoder's output)"
            )
        if state["visual"] is not None:
            for block, layer_states in zip(self.alignment, audio_states[:, :-1].unbind(1)):
                state["visual"] = block(state["visual"], layer_states)
        return BaseModelOutput(last_hidden_state=audio_states[:, -1])

    @contextmanager
    def _encoder_answers_with(self, encoder_output: BaseModelOutput):
        """Whisper's encoder, inside, returns ``encoder_output`` (repeated as `generate` repeats its input) instead of
        computing. `WhisperForConditionalGeneration.generate` cannot take ``encoder_outputs`` with
        ``num_return_sequences`` (transformers 5 repeats ``input_features`` for the N-best and fails on None), so it
        gets placeholder features of the right shape and this encoder."""
        encoder = self.whisper.model.encoder
        states = encoder_output.last_hidden_state

        def cached(input_features, *args, **kwargs):
            return BaseModelOutput(last_hidden_state=_expand_to(states, input_features.shape[0]))

        encoder.forward = cached
        try:
            yield
        finally:
            del encoder.forward

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        visual_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        lip_frames: torch.Tensor | None = None,
        video_attention_mask: torch.Tensor | None = None,
        audio_states: torch.Tensor | None = None,
        **kwargs,
    ) -> AvurOutput:
        r"""``attention_mask`` ``(batch, 3000)``: the feature frames of the clip (optional; the acoustic probe then
        weighs only them). ``lip_frames`` ``(batch, frames, size, size)`` with ``video_attention_mask`` replace
        ``visual_embeds`` for a model that owns a lip encoder. ``audio_states`` (:meth:`encode_audio`'s output)
        replaces ``input_features``: the Whisper encoder is then not run."""
        if (input_features is None) == (audio_states is None):
            raise ValueError(
                "pass exactly one of input_features (Whisper's log-mel features) and audio_states (the frozen "
                "encoder's states from encode_audio)"
            )
        if lip_frames is not None:
            visual_embeds = self.embed_lips(lip_frames, video_attention_mask)
        with self._visual_context(visual_embeds, attention_mask) as state:
            if audio_states is not None:
                kwargs["encoder_outputs"] = self._read_audio_states(state, audio_states)
            output = self.whisper(
                input_features=input_features, labels=labels, decoder_input_ids=decoder_input_ids, **kwargs
            )
        reliability = torch.cat(state["reliability"], dim=1) if state["reliability"] else None
        loss, auxiliary_loss = output.loss, None
        if labels is not None and state.get("opened") is not None:
            auxiliary_loss = self.open_gate_loss(state["opened"], labels)
            loss = loss + self.config.fusion_auxiliary_weight * auxiliary_loss
        return AvurOutput(
            loss=loss,
            logits=output.logits,
            acoustic_reliability=reliability,
            visual_hidden_states=state["visual"],
            auxiliary_loss=auxiliary_loss,
        )

    def open_gate_loss(self, opened: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy of the decoder state ``(batch, tokens, d)`` with the visual injection at full
        strength, through Whisper's own output projection, against ``labels`` ``(batch, tokens)`` (-100 ignored), as
        Whisper computes its loss. The gate starts at tanh(0) = 0, which sends the visual read no gradient at all;
        this loss trains the read while the gate is closed, so the gate can open once the read helps."""
        logits = self.whisper.proj_out(opened)
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)

    @torch.no_grad()
    def generate(
        self,
        input_features: torch.Tensor | None = None,
        visual_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        lip_frames: torch.Tensor | None = None,
        video_attention_mask: torch.Tensor | None = None,
        audio_states: torch.Tensor | None = None,
        **kwargs,
    ):
        """Whisper's `generate` (greedy, beams, ``output_scores``) with the visual stream; ``audio_states``
        (:meth:`encode_audio`'s output) replace ``input_features`` as in :meth:`forward`. Beam search runs on a
        :class:`BeamSharedCrossAttentionCache` (same results, less copying) unless a ``cache`` is passed.

        ``num_return_sequences=N`` with ``num_beams >= N`` returns the N-best: the beam's N best hypotheses, best
        first, with their ``sequences_scores``, each sequence starting with the transcript prefix (see
        :meth:`transcript_prefix`; ``language=`` and ``task=`` choose a multilingual Whisper's, by default English
        transcription). Whisper's own `generate` cannot give it: it repeats each input N times and beam-searches each
        copy alone, for its temperature fallback, so it returns N copies of the best hypothesis (transformers 5.24).
        The N-best therefore comes from `generate`'s own beam search, started from the prefix Whisper would use."""
        if (input_features is None) == (audio_states is None):
            raise ValueError(
                "pass exactly one of input_features (Whisper's log-mel features) and audio_states (the frozen "
                "encoder's states from encode_audio)"
            )
        if lip_frames is not None:
            visual_embeds = self.embed_lips(lip_frames, video_attention_mask)
        num_beams = kwargs.get("num_beams") or self.whisper.generation_config.num_beams or 1
        if num_beams > 1 and not any(name in kwargs for name in ("cache", "past_key_values", "temperature")):
            # a fresh cache per call (it holds state); not with temperature fallback, which decodes again with it
            kwargs["cache"] = BeamSharedCrossAttentionCache()
        decode = self.whisper.generate
        if (kwargs.get("num_return_sequences") or 1) > 1:
            prefix = self.transcript_prefix(kwargs.pop("language", None), kwargs.pop("task", None))

            def decode(features, **options):
                start = torch.tensor([prefix], device=features.device).expand(features.shape[0], -1)
                return GenerationMixin.generate(self.whisper, features, decoder_input_ids=start, **options)

        with self._visual_context(visual_embeds, attention_mask) as state:
            if audio_states is None:
                return decode(input_features, **kwargs)
            encoder_output = self._read_audio_states(state, audio_states)
            config = self.config.whisper_config
            placeholder = audio_states.new_zeros(
                audio_states.shape[0], config.num_mel_bins, 2 * config.max_source_positions
            )
            with self._encoder_answers_with(encoder_output):
                return decode(placeholder, **kwargs)

    def transcript_prefix(self, language: str | None = None, task: str | None = None) -> list[int]:
        """The tokens a transcript starts with, as Whisper's `generate` starts it without timestamps:
        ``<|startoftranscript|>``, for a multilingual Whisper the language (``"en"`` unless ``language`` says) and
        the task (``"transcribe"`` unless ``task`` says), then ``<|notimestamps|>``."""
        generation = self.whisper.generation_config
        prefix = [generation.decoder_start_token_id]
        if getattr(generation, "is_multilingual", False):
            language = (language or "en").strip("<|>")
            task = task or "transcribe"
            if f"<|{language}|>" not in generation.lang_to_id or task not in generation.task_to_id:
                raise ValueError(
                    f"language={language!r} or task={task!r} is unknown to this Whisper; languages are codes such as "
                    f"'en', tasks are {sorted(generation.task_to_id)}"
                )
            prefix += [generation.lang_to_id[f"<|{language}|>"], generation.task_to_id[task]]
        if getattr(generation, "no_timestamps_token_id", None) is not None:
            prefix.append(generation.no_timestamps_token_id)
        return prefix

    @classmethod
    def from_whisper(
        cls, whisper_name_or_path: str, lip_reader: str | None = None, **config_kwargs
    ) -> AvurForConditionalGeneration:
        """The AV model around a Whisper checkpoint (a Hub name or folder): Whisper's weights, new SMA and AMF
        blocks, the acoustic probe initialised from the fusion layer's cross-attention (the last by default). With
        ``lip_reader`` (a folder of `elegance-pretrain-lips`), the model owns that lip reader's encoder and reads mouth
        ROI clips."""
        from .modeling_lip_reading import LIP_ENCODER_FIELDS, lip_encoder_config_overrides, load_lip_encoder_state_dict

        if lip_reader is not None:
            sizes = lip_encoder_config_overrides(lip_reader)
            config_kwargs = {
                **config_kwargs,
                "lip_input": "frames",
                **{name: sizes[name] for name in LIP_ENCODER_FIELDS},
            }
        whisper = WhisperForConditionalGeneration.from_pretrained(whisper_name_or_path, dtype=torch.float32)
        generation = {
            name: value
            for name, value in whisper.generation_config.to_diff_dict().items()
            if name not in ("_from_model_config", "transformers_version")
        }
        config_kwargs.setdefault("whisper_generation_config", generation)
        model = cls(AvurConfig(whisper_config=whisper.config.to_dict(), **config_kwargs))
        model.whisper.load_state_dict(whisper.state_dict())
        if lip_reader is not None:
            model.lip_encoder.load_state_dict(load_lip_encoder_state_dict(lip_reader, model.config))
        probed_attention = model.whisper.model.decoder.layers[model.fusion_layer_index].encoder_attn
        with torch.no_grad():
            model.fusion.probe_query.load_state_dict(probed_attention.q_proj.state_dict())
            model.fusion.probe_key.weight.copy_(probed_attention.k_proj.weight)
        return model
