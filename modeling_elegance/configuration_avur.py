"""Configuration of AVUR-LLM's first stage: a Whisper recogniser with sparse modality alignment (SMA) in its upper
encoder layers and adaptive modulated fusion (AMF) in its decoder."""

from __future__ import annotations

from transformers import PretrainedConfig, WhisperConfig


class AvurConfig(PretrainedConfig):
    r"""
    Args:
        whisper_config: the Whisper recogniser's config (a dict or a `WhisperConfig`); its weights come from any
            Whisper checkpoint with :meth:`AvurForConditionalGeneration.from_whisper`.
        visual_dim: width of the per-frame visual features the model takes (`visual_embeds`): 128 for the package's
            lip reader, 768 or 1024 for AV-HuBERT's.
        sma_layers: indices of the Whisper encoder layers after which an alignment block is inserted (default: the
            upper half, as the paper puts them in the *upper* layers). ``[]``: no alignment block, the ablation
            without SMA: the projected visual stream enters the fusion as it is, with no route to the audio states.
        sma_num_heads: attention heads of each alignment block and of the fusion's visual read (must divide
            Whisper's `d_model`).
        sma_ffn_dim: hidden width of each alignment block's feed-forward (default: 2 x `d_model`).
        sma_output_norm: normalise what each alignment block adds to the visual stream (its cross-attention read and
            its feed-forward output, a LayerNorm each, as NormFormer does), so the audio it reads cannot outgrow the
            visual content of the stream. Not in the paper; off by default. Without it, training on an oracle
            visual stream grew the audio read to about 2,500 in norm against about 2 for the visual content
            (`benchmarks/diagnose_avsr_visual_oracle.py`).
        modality_dropout: in training, the share of examples whose visual stream is dropped (the model must stay a
            good audio-only recogniser).
        fusion_modulation: ``"reliability"`` (AMF: the visual injection scales with the token's acoustic
            unreliability) or ``"none"`` (the ablation "SMA only": the aligned visual stream enters the decoder by
            the same gated cross-attention, its gate alone deciding how much).
        fusion_read: how a decoder token reads the aligned visual stream: ``"attention"`` (a learned cross-attention
            from the decoder state) or ``"aligned"`` (the acoustic probe's attention over the audio frames pools the
            visual stream at the same instants: the token reads the lips where it listens).
        fusion_layer: where AMF injects the visual read: None (the default) after the whole decoder, on the state
            Whisper's output projection reads; an index ``k`` after decoder layer ``k``, so that the layers after it
            (and their LoRA) can use what it injects. The acoustic probe then starts from layer ``k``'s
            cross-attention. Not in the paper, which says only "in the decoder".
        fusion_auxiliary_weight: in training, the weight of an auxiliary next-token loss on the decoder state with
            the visual injection at full strength (the gate bypassed). The gate starts closed, and tanh(0) = 0 sends
            the visual read no gradient, so without this loss the read learns only as fast as the gate opens. Not
            in the paper; 0 (the default) turns it off. It changes nothing at inference.
        lip_input: ``"embeddings"`` (the model takes `visual_embeds`) or ``"frames"`` (it owns a lip encoder, the
            one of a lip-reading model, and takes mouth ROI clips as `lip_frames`; `visual_dim` is then its
            `lip_embedding_dim`).
        lip_frontend_width, lip_embedding_dim, lip_temporal_layers, lip_roi_size: the lip encoder's sizes (with
            ``lip_input="frames"``; :meth:`AvurForConditionalGeneration.from_whisper` copies them from a lip reader).
        whisper_generation_config: Whisper's generation settings (its ``suppress_tokens``, ``no_timestamps_token_id``,
            language and task tokens, ...), as a dict. :meth:`AvurForConditionalGeneration.from_whisper` copies them
            from the checkpoint, so that a saved recogniser decodes as its Whisper does; without them (folders saved
            before they were kept) Whisper's generation settings are rebuilt from its config, which lacks those.

    Example:

    ```python
    >>> from modeling_elegance import AvurConfig
    >>> config = AvurConfig(whisper_config={"d_model": 64, "encoder_layers": 4, "decoder_layers": 2})
    >>> config.sma_layers
    [2, 3]

    ```
    """

    model_type = "avur"
    sub_configs = {"whisper_config": WhisperConfig}

    def __init__(
        self,
        whisper_config: dict | WhisperConfig | None = None,
        visual_dim: int = 128,
        sma_layers: list[int] | None = None,
        sma_num_heads: int = 4,
        sma_ffn_dim: int | None = None,
        sma_output_norm: bool = False,
        modality_dropout: float = 0.0,
        fusion_modulation: str = "reliability",
        fusion_read: str = "attention",
        fusion_auxiliary_weight: float = 0.0,
        fusion_layer: int | None = None,
        lip_input: str = "embeddings",
        lip_frontend_width: int = 8,
        lip_embedding_dim: int = 128,
        lip_temporal_layers: int = 1,
        lip_roi_size: int = 48,
        whisper_generation_config: dict | None = None,
        **kwargs,
    ):
        if whisper_config is None:
            whisper_config = WhisperConfig()
        elif isinstance(whisper_config, dict):
            whisper_config = WhisperConfig(**whisper_config)
        self.whisper_config = whisper_config
        layers, width = whisper_config.encoder_layers, whisper_config.d_model
        self.sma_layers = sorted(set(sma_layers)) if sma_layers is not None else list(range(layers // 2, layers))
        if not all(0 <= index < layers for index in self.sma_layers):
            raise ValueError(
                f"sma_layers must name Whisper encoder layers 0..{layers - 1} (or be [] for no alignment block), got "
                f"{sma_layers}"
            )
        if width % sma_num_heads:
            raise ValueError(f"sma_num_heads ({sma_num_heads}) must divide Whisper's d_model ({width})")
        if not 0.0 <= modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must lie in [0, 1), got {modality_dropout}")
        if fusion_modulation not in ("reliability", "none"):
            raise ValueError(f"fusion_modulation must be 'reliability' (AMF) or 'none', got {fusion_modulation!r}")
        self.fusion_modulation = fusion_modulation
        if fusion_read not in ("attention", "aligned"):
            raise ValueError(f"fusion_read must be 'attention' or 'aligned', got {fusion_read!r}")
        self.fusion_read = fusion_read
        if fusion_auxiliary_weight < 0:
            raise ValueError(f"fusion_auxiliary_weight must be >= 0, got {fusion_auxiliary_weight}")
        self.fusion_auxiliary_weight = fusion_auxiliary_weight
        decoder_layers = whisper_config.decoder_layers
        if fusion_layer is not None and not 0 <= fusion_layer < decoder_layers:
            raise ValueError(
                f"fusion_layer must be None (after the decoder) or one of the decoder's layers 0..{decoder_layers - 1}, "
                f"got {fusion_layer}"
            )
        self.fusion_layer = fusion_layer
        if lip_input not in ("embeddings", "frames"):
            raise ValueError(f"lip_input must be 'embeddings' or 'frames', got {lip_input!r}")
        self.lip_input = lip_input
        self.lip_frontend_width = lip_frontend_width
        self.lip_embedding_dim = lip_embedding_dim
        self.lip_temporal_layers = lip_temporal_layers
        self.lip_roi_size = lip_roi_size
        self.visual_dim = lip_embedding_dim if lip_input == "frames" else visual_dim
        self.sma_num_heads = sma_num_heads
        self.sma_ffn_dim = sma_ffn_dim or 2 * width
        self.sma_output_norm = sma_output_norm
        self.modality_dropout = modality_dropout
        self.whisper_generation_config = whisper_generation_config
        super().__init__(**kwargs)
