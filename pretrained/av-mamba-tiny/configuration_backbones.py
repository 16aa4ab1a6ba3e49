"""Configs of the extraction backbones: USEV (dual-path BLSTM) and AV-Mamba (dual-path Mamba), audio-visual
target speech extraction and audio-only speech enhancement.

Defaults are the paper sizes of USEV (Pan et al., 2022), about 4.12M parameters with precomputed lip embeddings.
"""

from __future__ import annotations

from .configuration_elegance import EleganceConfig

LIP_INPUTS = ("frames", "embeddings")
LOSSES = ("si_sdr", "activity_aware")
ENCODER_TYPES = ("learned", "stft")
SEQUENCE_MODELS = ("lstm", "mamba")


class DualPathConfig(EleganceConfig):
    r"""Sizes of a dual-path extraction backbone. Use :class:`UsevConfig` or :class:`AVMambaConfig` (and their
    audio-only ``...SEConfig``); the defaults are USEV's paper sizes.

    Args:
        encoder_channels (`int`, *optional*, defaults to 256):
            Filters of the waveform encoder (``N``).
        encoder_kernel_size (`int`, *optional*, defaults to 40):
            Encoder window in samples (``L``); the hop is half of it for the learned encoder.
        encoder_type (`str`, *optional*, defaults to `"learned"`):
            ``"learned"`` (USEV's: a strided convolution of ``encoder_channels`` filters, a ReLU mask, and a learned
            decoder) or ``"stft"`` (not in USEV: a Hann-windowed STFT of ``encoder_kernel_size`` points with hop
            ``encoder_hop_size``, a complex mask and the inverse STFT; ``encoder_channels`` is then unused).
        encoder_hop_size (`int`, *optional*):
            Hop of the STFT encoder; a quarter of its window when None. The learned encoder's hop is always half of
            its window.
        bottleneck_channels (`int`, *optional*, defaults to 64):
            Width of the dual-path blocks (``B``).
        num_blocks (`int`, *optional*, defaults to 6):
            Dual-path blocks (``R``).
        chunk_size (`int`, *optional*, defaults to 100):
            Frames per chunk (``K``); chunks overlap by half.
        sequence_model (`str`, *optional*, defaults to `"lstm"`):
            ``"lstm"`` (USEV) or ``"mamba"`` (AV-Mamba), run within and across chunks; fixed by the subclass.
        hidden_size (`int`, *optional*, defaults to 128):
            LSTM units per direction.
        mamba_state_size (`int`, *optional*, defaults to 16):
            Mamba's ``d_state``.
        mamba_expand (`int`, *optional*, defaults to 2):
            Mamba's expansion factor.
        mamba_conv_kernel (`int`, *optional*, defaults to 4):
            Width of Mamba's causal convolution.
        mamba_time_step_rank (`int`, *optional*):
            Rank of Mamba's step-size projection; ``ceil(bottleneck_channels / 16)`` when None.
        lip_input (`str`, *optional*, defaults to `"frames"`):
            ``"frames"`` (grayscale mouth ROI clips through the model's own lip front-end), ``"embeddings"``
            (precomputed per-frame lip embeddings of ``lip_embedding_dim``), or None for the audio-only models.
        lip_embedding_dim (`int`, *optional*, defaults to 512):
            Size of a lip embedding.
        lip_frontend_width (`int`, *optional*, defaults to 64):
            Channels of the lip front-end's first stage (64 is ResNet-18).
        lip_temporal_layers (`int`, *optional*, defaults to 0):
            BiLSTM layers over the lip front-end: 0 is USEV's front-end alone, 1 the lip-reading encoder of
            ``elegance-pretrain-lips`` (see :class:`~modeling_elegance.lip_encoder.LipEncoder`).
        lip_encoder (`str`, *optional*):
            Folder of a lip-reading model (``elegance-pretrain-lips``) whose encoder weights a newly built model
            starts from; set it with ``preset_config(..., lip_encoder=FOLDER)``, which also copies its sizes. Only
            read when a model is built from scratch: ``from_pretrained`` never needs the folder again.
        visual_channels (`int`, *optional*, defaults to 256):
            Width of the V-TCN's residual stream.
        visual_hidden_channels (`int`, *optional*, defaults to 512):
            Width inside each V-TCN block.
        visual_num_blocks (`int`, *optional*, defaults to 5):
            V-TCN blocks.
        prior_embedding_dim (`int`, *optional*):
            Width of a linguistic prior fused by gated cross-attention (input guidance); None builds no fusion.
        prior_num_heads (`int`, *optional*, defaults to 4):
            Attention heads of that fusion; must divide ``bottleneck_channels``.
        loss (`str`, *optional*, defaults to `"si_sdr"`):
            ``"si_sdr"`` (negative SI-SDR) or ``"activity_aware"`` (USEV's: -SDR where the target speaks, a
            log-energy penalty of weight ``silence_penalty_weight`` where it is silent).
        silence_penalty_weight (`float`, *optional*, defaults to 0.005):
            Weight of that penalty.
        activity_threshold_db (`float`, *optional*, defaults to -40.0):
            A 20 ms frame of the target is speech when within this many dB of its loudest frame.

    Example:

    ```python
    >>> from modeling_elegance import UsevConfig, UsevForTargetSpeechExtraction

    >>> config = UsevConfig(lip_input="embeddings")  # USEV's paper sizes on precomputed lip embeddings
    >>> model = UsevForTargetSpeechExtraction(config)
    >>> sum(p.numel() for p in model.parameters())
    4119302

    ```
    """

    model_type = "dual_path"

    def __init__(
        self,
        encoder_channels: int = 256,
        encoder_kernel_size: int = 40,
        encoder_type: str = "learned",
        encoder_hop_size: int | None = None,
        bottleneck_channels: int = 64,
        num_blocks: int = 6,
        chunk_size: int = 100,
        sequence_model: str = "lstm",
        hidden_size: int = 128,
        mamba_state_size: int = 16,
        mamba_expand: int = 2,
        mamba_conv_kernel: int = 4,
        mamba_time_step_rank: int | None = None,
        lip_input: str | None = "frames",
        lip_embedding_dim: int = 512,
        lip_frontend_width: int = 64,
        lip_temporal_layers: int = 0,
        lip_encoder: str | None = None,
        visual_channels: int = 256,
        visual_hidden_channels: int = 512,
        visual_num_blocks: int = 5,
        prior_embedding_dim: int | None = None,
        prior_num_heads: int = 4,
        loss: str = "si_sdr",
        silence_penalty_weight: float = 0.005,
        activity_threshold_db: float = -40.0,
        **kwargs,
    ):
        if sequence_model not in SEQUENCE_MODELS:
            raise ValueError(f"sequence_model must be one of {SEQUENCE_MODELS}, got {sequence_model!r}")
        if lip_input is not None and lip_input not in LIP_INPUTS:
            raise ValueError(f"lip_input must be one of {LIP_INPUTS}, got {lip_input!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if prior_embedding_dim is not None and bottleneck_channels % prior_num_heads:
            raise ValueError(
                f"prior_num_heads ({prior_num_heads}) must divide bottleneck_channels ({bottleneck_channels})"
            )
        if lip_encoder is not None and lip_input != "frames":
            raise ValueError(
                f"lip_encoder={lip_encoder!r} needs lip_input='frames' (the model owns the pretrained encoder), got "
                f"lip_input={lip_input!r}"
            )
        if encoder_type not in ENCODER_TYPES:
            raise ValueError(f"encoder_type must be one of {ENCODER_TYPES}, got {encoder_type!r}")
        if encoder_type == "learned" and encoder_hop_size not in (None, encoder_kernel_size // 2):
            raise ValueError(
                f"the learned encoder's hop is half its window ({encoder_kernel_size // 2} samples), got "
                f"encoder_hop_size={encoder_hop_size}; leave encoder_hop_size unset or use encoder_type='stft'"
            )
        if chunk_size < 2:
            raise ValueError(f"chunk_size must be at least 2, got {chunk_size}")
        self.encoder_channels = encoder_channels
        self.encoder_kernel_size = encoder_kernel_size
        self.encoder_type = encoder_type
        self.encoder_hop_size = encoder_hop_size
        hop = self.encoder_stride
        if encoder_type == "stft" and (hop < 1 or hop > encoder_kernel_size // 2 or encoder_kernel_size % hop):
            raise ValueError(
                f"the STFT hop must divide its window and be at most half of it; got encoder_hop_size={hop} for "
                f"encoder_kernel_size={encoder_kernel_size} (e.g. 128 for 512)"
            )
        self.bottleneck_channels = bottleneck_channels
        self.num_blocks = num_blocks
        self.chunk_size = chunk_size
        self.sequence_model = sequence_model
        self.hidden_size = hidden_size
        self.mamba_state_size = mamba_state_size
        self.mamba_expand = mamba_expand
        self.mamba_conv_kernel = mamba_conv_kernel
        self.mamba_time_step_rank = mamba_time_step_rank
        self.lip_input = lip_input
        self.lip_embedding_dim = lip_embedding_dim
        self.lip_frontend_width = lip_frontend_width
        self.lip_temporal_layers = lip_temporal_layers
        self.lip_encoder = lip_encoder
        self.visual_channels = visual_channels
        self.visual_hidden_channels = visual_hidden_channels
        self.visual_num_blocks = visual_num_blocks
        self.prior_embedding_dim = prior_embedding_dim
        self.prior_num_heads = prior_num_heads
        self.loss = loss
        self.silence_penalty_weight = silence_penalty_weight
        self.activity_threshold_db = activity_threshold_db
        super().__init__(**kwargs)

    @property
    def encoder_stride(self) -> int:
        """Hop of the encoder in samples: its frames come at ``sampling_rate / encoder_stride`` a second."""
        if self.encoder_type == "stft":
            return self.encoder_kernel_size // 4 if self.encoder_hop_size is None else self.encoder_hop_size
        return self.encoder_kernel_size // 2


def _fixed(config_class: str, name: str, value, required, hint: str):
    """Refuses a setting that contradicts what the config class is, instead of silently overriding it."""
    if value != required:
        raise ValueError(f"{config_class} has {name}={required!r}, got {name}={value!r}; {hint}")


class UsevConfig(DualPathConfig):
    """USEV, the AV-DPRNN: dual-path BLSTM blocks. See :class:`DualPathConfig` for the arguments."""

    model_type = "usev"

    def __init__(self, sequence_model: str = "lstm", **kwargs):
        _fixed(type(self).__name__, "sequence_model", sequence_model, "lstm", "for Mamba blocks use AVMambaConfig")
        super().__init__(sequence_model=sequence_model, **kwargs)


class AVMambaConfig(DualPathConfig):
    """AV-Mamba: dual-path bidirectional Mamba blocks. See :class:`DualPathConfig` for the arguments."""

    model_type = "av_mamba"

    def __init__(self, sequence_model: str = "mamba", **kwargs):
        _fixed(type(self).__name__, "sequence_model", sequence_model, "mamba", "for BLSTM blocks use UsevConfig")
        super().__init__(sequence_model=sequence_model, **kwargs)


class UsevSEConfig(UsevConfig):
    """Audio-only USEV for speech enhancement (CMKT's setting): no visual path, ``lip_input`` is None."""

    model_type = "usev_se"

    def __init__(self, lip_input: str | None = None, **kwargs):
        _fixed(type(self).__name__, "lip_input", lip_input, None, "it is audio-only; for lips use UsevConfig")
        super().__init__(lip_input=lip_input, **kwargs)


class AVMambaSEConfig(AVMambaConfig):
    """Audio-only AV-Mamba for speech enhancement: no visual path, ``lip_input`` is None."""

    model_type = "av_mamba_se"

    def __init__(self, lip_input: str | None = None, **kwargs):
        _fixed(type(self).__name__, "lip_input", lip_input, None, "it is audio-only; for lips use AVMambaConfig")
        super().__init__(lip_input=lip_input, **kwargs)
