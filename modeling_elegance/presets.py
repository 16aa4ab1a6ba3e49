"""Named model sizes: ``preset_config("usev-base", **overrides)``.

``*-base`` are the paper sizes (USEV: 4.12M parameters with precomputed lip embeddings, plus 11.2M for the lip
front-end with ``lip_input="frames"``). ``*-tiny`` are sized for a laptop CPU (a training step on 4 x 3 s well
under a second) and for the 48-pixel mouth crops of the embedded default corpus. ``*-se-*`` are the audio-only
speech enhancement variants.
"""

from __future__ import annotations

from .configuration_backbones import AVMambaConfig, AVMambaSEConfig, DualPathConfig, UsevConfig, UsevSEConfig

_TINY = dict(
    encoder_channels=64,
    encoder_kernel_size=80,  # hop of 40 samples: half the frames of the paper's 20, for speed on a CPU
    bottleneck_channels=32,
    num_blocks=2,
    hidden_size=32,
    mamba_state_size=4,
    mamba_expand=1,
    lip_embedding_dim=64,
    lip_frontend_width=8,
    lip_roi_size=48,
    visual_channels=64,
    visual_hidden_channels=128,
    visual_num_blocks=2,
)

PRESETS: dict[str, tuple[type[DualPathConfig], dict]] = {
    "usev-base": (UsevConfig, {}),
    "av-mamba-base": (AVMambaConfig, {}),
    "usev-tiny": (UsevConfig, _TINY),
    "av-mamba-tiny": (AVMambaConfig, _TINY),
    "usev-se-base": (UsevSEConfig, {}),
    "av-mamba-se-base": (AVMambaSEConfig, {}),
    "usev-se-tiny": (UsevSEConfig, _TINY),
    "av-mamba-se-tiny": (AVMambaSEConfig, _TINY),
}


def preset_config(name: str, *, lip_encoder: str | None = None, **overrides) -> DualPathConfig:
    """The config of preset ``name`` (one of :data:`PRESETS`), with ``overrides`` applied to its fields.

    ``lip_encoder=FOLDER`` (a lip-reading model written by ``elegance-pretrain-lips``) takes the lip encoder's sizes
    from that model, and a model built from the config starts with its weights.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    config_class, sizes = PRESETS[name]
    if lip_encoder is not None:
        from .modeling_lip_reading import lip_encoder_config_overrides

        overrides = {**lip_encoder_config_overrides(lip_encoder), **overrides}
    return config_class(**{**sizes, **overrides})
