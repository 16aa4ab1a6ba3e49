"""Configs of the extraction backbones: USEV (dual-path BLSTM) and AV-Mamba (dual-path Mamba), audio-visual
target speech extraction and audio-only speech enhancement.

Defaults are the paper sizes of USEV (Pan et al., 2022), about 4.12M parameters with precomputed lip embeddings.
"""

from __future__ import annotations

from .configuration_elegance import EleganceConfig

LIP_INPUTS = ("frames", "embeddings")
LOSSES = ("si_sdr", "activity_aware")
SEQUENCE_MODELS = ("lstm", "mamba")


class DualPathConfig(EleganceConfig):
    r"""Sizes of a dual-path extraction backbone. Use :class:`UsevConfig` or :class:`AVMambaConfig`.

    Args:
        encoder_channels: filters of the waveform encoder (``N``).
        encoder_kernel_size: encoder window in samples (``L``); the hop is half of it.
        bottleneck_channels: width of the dual-path blocks (``B``).
        num_blocks: dual-path blocks (``R``).
        chunk_size: frames per chunk (``K``), chunks overlap by half.
        sequence_model: ``"lstm"`` (USEV) or ``"mamba"`` (AV-Mamba), run within and across chunks.
        hidden_size: LSTM units per direction.
        mamba_state_size, mamba_expand, mamba_conv_kernel, mamba_time_step_rank: Mamba's ``d_state``, expansion,
            causal convolution width and step-size rank (``ceil(bottleneck / 16)`` when None).
        lip_input: ``"frames"`` (grayscale mouth ROI clips through the model's own lip front-end) or
            ``"embeddings"`` (precomputed per-frame lip embeddings of ``lip_embedding_dim``).
        lip_embedding_dim: size of a lip embedding.
        lip_frontend_width: channels of the lip front-end's first stage (64 is ResNet-18).
        lip_temporal_layers: BiLSTM layers over the lip front-end (0, USEV's front-end alone; 1, the lip-reading
            encoder of ``elegance-pretrain-lips``); see :class:`~modeling_elegance.lip_encoder.LipEncoder`.
        lip_encoder: folder of a lip-reading model (``elegance-pretrain-lips``) whose encoder weights a newly built
            model starts from (set it with ``preset_config(..., lip_encoder=FOLDER)``, which also copies its sizes).
            Only read when a model is built from scratch: ``from_pretrained`` never needs the folder again.
        visual_channels, visual_hidden_channels, visual_num_blocks: the V-TCN.
        prior_embedding_dim: width of a linguistic prior fused by gated cross-attention; None builds no fusion.
        prior_num_heads: attention heads of that fusion.
        loss: ``"si_sdr"`` (negative SI-SDR) or ``"activity_aware"`` (USEV's: -SDR where the target speaks, a
            log-energy penalty of weight ``silence_penalty_weight`` where it is silent).
        silence_penalty_weight: weight of that penalty.
        activity_threshold_db: a 20 ms frame of the target is speech when within this many dB of its loudest frame.
    """

    model_type = "dual_path"

    def __init__(
        self,
        encoder_channels: int = 256,
        encoder_kernel_size: int = 40,
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
        if chunk_size < 2:
            raise ValueError(f"chunk_size must be at least 2, got {chunk_size}")
        self.encoder_channels = encoder_channels
        self.encoder_kernel_size = encoder_kernel_size
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
        return self.encoder_kernel_size // 2


class UsevConfig(DualPathConfig):
    """USEV, the AV-DPRNN: dual-path BLSTM blocks. See :class:`DualPathConfig` for the arguments."""

    model_type = "usev"

    def __init__(self, sequence_model: str = "lstm", **kwargs):
        super().__init__(sequence_model=sequence_model, **kwargs)


class AVMambaConfig(DualPathConfig):
    """AV-Mamba: dual-path bidirectional Mamba blocks. See :class:`DualPathConfig` for the arguments."""

    model_type = "av_mamba"

    def __init__(self, sequence_model: str = "mamba", **kwargs):
        super().__init__(sequence_model=sequence_model, **kwargs)


class UsevSEConfig(UsevConfig):
    """Audio-only USEV for speech enhancement (CMKT's setting): no visual path, ``lip_input`` is None."""

    model_type = "usev_se"

    def __init__(self, lip_input: str | None = None, **kwargs):
        super().__init__(lip_input=None, **kwargs)


class AVMambaSEConfig(AVMambaConfig):
    """Audio-only AV-Mamba for speech enhancement: no visual path, ``lip_input`` is None."""

    model_type = "av_mamba_se"

    def __init__(self, lip_input: str | None = None, **kwargs):
        super().__init__(lip_input=None, **kwargs)
