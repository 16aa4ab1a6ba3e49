"""`EleganceConfig`: what every ELEGANCE model shares, the audio and lip-video formats it expects.

The backbone configs subclass it; the processor is registered against it, so `AutoProcessor` finds an
`EleganceProcessor` in any saved ELEGANCE folder.
"""

from __future__ import annotations

from transformers import PreTrainedConfig


class EleganceConfig(PreTrainedConfig):
    r"""Shared input format of ELEGANCE models.

    Args:
        sampling_rate (`int`, *optional*, defaults to 16000):
            Audio rate in Hz.
        fps (`int`, *optional*, defaults to 25):
            Lip video frame rate.
        lip_roi_size (`int`, *optional*, defaults to 88):
            Side of the square grayscale mouth ROI in pixels.

    Example:

    ```python
    >>> from modeling_elegance import EleganceConfig

    >>> EleganceConfig(lip_roi_size=48).to_dict()["lip_roi_size"]
    48

    ```
    """

    model_type = "elegance"

    def __init__(self, sampling_rate: int = 16000, fps: int = 25, lip_roi_size: int = 88, **kwargs):
        self.sampling_rate = sampling_rate
        self.fps = fps
        self.lip_roi_size = lip_roi_size
        super().__init__(**kwargs)
