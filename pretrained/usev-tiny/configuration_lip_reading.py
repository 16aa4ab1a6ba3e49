"""Config of the lip-reading model that pretrains the backbones' lip encoder (``elegance-pretrain-lips``)."""

from __future__ import annotations

from .configuration_elegance import EleganceConfig

SILENCE = "_"  # the label of frames where no phone is active


class LipReadingConfig(EleganceConfig):
    r"""A lip encoder plus a per-frame phone classifier.

    Args:
        lip_frontend_width (`int`, *optional*, defaults to 8): channels of the front-end's first ResNet stage.
        lip_embedding_dim (`int`, *optional*, defaults to 128): size of the per-frame embedding a backbone reads.
        lip_temporal_layers (`int`, *optional*, defaults to 1): BiLSTM layers over the front-end (see
            :class:`~modeling_elegance.lip_encoder.LipEncoder`).
        phonemes (`list[str]`, *optional*): the class labels, the silence label ``"_"`` first; class ``i`` is
            ``phonemes[i]``.
        sampling_rate, fps, lip_roi_size: see :class:`EleganceConfig`.

    Example:

    ```python
    >>> from modeling_elegance import LipReadingConfig, LipReadingModel
    >>> config = LipReadingConfig(lip_roi_size=48, phonemes=["_", "a", "b"])
    >>> LipReadingModel(config).config.num_phonemes
    3

    ```
    """

    model_type = "lip_reading"

    def __init__(
        self,
        lip_frontend_width: int = 8,
        lip_embedding_dim: int = 128,
        lip_temporal_layers: int = 1,
        phonemes: list[str] | None = None,
        **kwargs,
    ):
        phonemes = list(phonemes) if phonemes is not None else [SILENCE]
        if phonemes[0] != SILENCE or len(set(phonemes)) != len(phonemes):
            raise ValueError(
                f"phonemes must be distinct labels with the silence label {SILENCE!r} first, got {phonemes[:5]}..."
            )
        self.lip_frontend_width = lip_frontend_width
        self.lip_embedding_dim = lip_embedding_dim
        self.lip_temporal_layers = lip_temporal_layers
        self.phonemes = phonemes
        super().__init__(**kwargs)

    @property
    def num_phonemes(self) -> int:
        return len(self.phonemes)
