"""Converts a checkpoint of the original USEV network into a Hugging Face UsevForTargetSpeechExtraction folder.

The original is github.com/zexupan/USEV, ``src/usev-pretrain/network.py`` (``src/usev-train`` has the same network),
class ``usev(N, L, B, H, K, R, C)``; its solver saves ``{"model": state_dict, ...}``, with a ``module.`` prefix when
trained with DDP. Every tensor maps one to one (203 at the paper sizes); only the shapes of two kinds change: the
original's ``v_ds`` is ``nn.Linear(512, 256)`` where ours is a 1x1 ``Conv1d`` (a trailing axis), and its V-TCN gLN
keeps ``gamma``/``beta`` as ``(1, channels, 1)`` where ours has ``weight``/``bias`` ``(channels,)``.

    python -m modeling_elegance.convert_usev_original_checkpoint --checkpoint model_dict.pt --output_dir DIR \\
        [--chunk_size 100]

writes a folder that ``AutoModel.from_pretrained(DIR)`` loads after ``import modeling_elegance``. The model takes
the original's inputs: 16 kHz audio and precomputed 512-d lip embeddings at 25 fps (``lip_input="embeddings"``,
passed as ``lip_embeds (batch, video frames, 512)``). The chunk size ``K`` leaves no trace in the weights: pass the
one the checkpoint was trained with (the original's default is 100).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping

import torch

from .configuration_backbones import UsevConfig
from .modeling_usev import UsevForTargetSpeechExtraction

ORIGINAL_CHUNK_SIZE = 100
LSTM_PARAMETERS = tuple(
    f"{kind}_{gate}_l0{direction}"
    for kind in ("weight", "bias")
    for gate in ("ih", "hh")
    for direction in ("", "_reverse")
)
# VisualConv1D.net of the original: index -> (our layer in VisualConvBlock, {original parameter: ours});
# indices 0 and 3 are ReLUs
VISUAL_LAYERS = {
    1: ("norm_in", {"gamma": "weight", "beta": "bias"}),
    2: ("expand", {"weight": "weight"}),
    4: ("norm_expanded", {"gamma": "weight", "beta": "bias"}),
    5: ("depthwise", {"weight": "weight"}),
    6: ("activation", {"weight": "weight"}),
    7: ("norm_depthwise", {"gamma": "weight", "beta": "bias"}),
    8: ("project", {"weight": "weight"}),
}


def original_state_dict(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    """The network's tensors of an original checkpoint: ``checkpoint["model"]`` when the solver saved it, else the
    checkpoint itself, without a DDP ``module.`` prefix."""
    state_dict = checkpoint.get("model", checkpoint)
    if not isinstance(state_dict, Mapping):
        raise ValueError(
            f"checkpoint['model'] is a {type(state_dict).__name__}, not a state_dict; pass the original solver's "
            f"checkpoint ({{'model': state_dict, ...}}) or a bare state_dict of usev(N, L, B, H, K, R, C)"
        )
    return {name.removeprefix("module."): tensor for name, tensor in state_dict.items()}


def _shape(state_dict: Mapping, name: str, size: str) -> torch.Size:
    if name not in state_dict:
        raise ValueError(
            f"the checkpoint has no {name!r}, which gives {size}; expected a state_dict of the original USEV network "
            f"(src/usev-pretrain/network.py of github.com/zexupan/USEV)"
        )
    return state_dict[name].shape


def _count(state_dict: Mapping, pattern: str) -> int:
    indices = {int(match.group(1)) for name in state_dict if (match := re.match(pattern, name))}
    return max(indices) + 1 if indices else 0


def usev_config_from_original_state_dict(
    checkpoint: Mapping, chunk_size: int = ORIGINAL_CHUNK_SIZE, **overrides
) -> UsevConfig:
    """The :class:`UsevConfig` of an original checkpoint (a state_dict or the solver's ``{"model": ...}``).

    ``N``, ``L``, ``B``, ``H``, ``R`` and the visual path's sizes come from the tensor shapes; ``chunk_size`` (``K``)
    is not in the weights and is taken as given. ``overrides`` set any other config field.
    """
    state_dict = original_state_dict(checkpoint)
    encoder_channels, _, kernel_size = _shape(state_dict, "encoder.conv1d_U.weight", "N and L")
    visual_channels, lip_embedding_dim = _shape(state_dict, "separator.v_ds.weight", "the visual width")
    sizes = dict(
        encoder_channels=encoder_channels,
        encoder_kernel_size=kernel_size,
        bottleneck_channels=_shape(state_dict, "separator.bottleneck_conv1x1.weight", "B")[0],
        hidden_size=_shape(state_dict, "separator.dual_rnn.0.intra_rnn.weight_hh_l0", "H")[1],
        num_blocks=_count(state_dict, r"separator\.dual_rnn\.(\d+)\."),
        chunk_size=chunk_size,
        lip_input="embeddings",
        lip_embedding_dim=lip_embedding_dim,
        visual_channels=visual_channels,
        visual_hidden_channels=_shape(state_dict, "separator.visual_conv.0.net.2.weight", "the V-TCN width")[0],
        visual_num_blocks=_count(state_dict, r"separator\.visual_conv\.(\d+)\."),
    )
    return UsevConfig(**(sizes | overrides))


def original_to_model_names(config: UsevConfig) -> dict[str, str]:
    """``{original parameter name: ours}`` for every tensor of the original network at the sizes of ``config``."""
    names = {
        "encoder.conv1d_U.weight": "encoder.conv.weight",
        "decoder.basis_signals.weight": "decoder.basis.weight",
        "separator.layer_norm.weight": "extractor.norm.weight",
        "separator.layer_norm.bias": "extractor.norm.bias",
        "separator.bottleneck_conv1x1.weight": "extractor.bottleneck.weight",
        "separator.av_conv.weight": "extractor.cue_fusion.weight",
        "separator.prelu.weight": "extractor.mask_activation.weight",
        "separator.mask_conv1x1.weight": "extractor.mask_projection.weight",
        "separator.v_ds.weight": "visual_encoder.tcn.project.weight",
    }
    for block in range(config.num_blocks):
        for path in ("intra", "inter"):
            original, ours = f"separator.dual_rnn.{block}.{path}", f"extractor.blocks.{block}.{path}"
            names |= {f"{original}_rnn.{name}": f"{ours}_model.lstm.{name}" for name in LSTM_PARAMETERS}
            for kind in ("weight", "bias"):
                names[f"{original}_linear.{kind}"] = f"{ours}_projection.{kind}"
                names[f"{original}_norm.{kind}"] = f"{ours}_norm.{kind}"
    for block in range(config.visual_num_blocks):
        original, ours = f"separator.visual_conv.{block}.net", f"visual_encoder.tcn.blocks.{block}"
        for index, (layer, parameters) in VISUAL_LAYERS.items():
            names |= {f"{original}.{index}.{old}": f"{ours}.{layer}.{new}" for old, new in parameters.items()}
    return names


def _to_our_shape(name: str, tensor: torch.Tensor) -> torch.Tensor:
    if name == "separator.v_ds.weight":
        return tensor.unsqueeze(-1)  # Linear (256, 512) -> Conv1d 1x1 (256, 512, 1)
    if name.endswith((".gamma", ".beta")):
        return tensor.reshape(-1)  # gLN (1, channels, 1) -> (channels,)
    return tensor


def convert_usev_original_state_dict(checkpoint: Mapping, config: UsevConfig | None = None) -> dict[str, torch.Tensor]:
    """Our ``state_dict`` of :class:`UsevForTargetSpeechExtraction` from an original checkpoint (a state_dict or
    the solver's ``{"model": ...}``, with or without ``module.``); ``config`` defaults to the inferred one.

    Raises ValueError naming every original tensor that maps to none of ours, every one that is missing, and every
    shape that does not match, so that the result always fills the model exactly (``load_state_dict(strict=True)``).
    """
    state_dict = original_state_dict(checkpoint)
    config = config or usev_config_from_original_state_dict(state_dict)
    names = original_to_model_names(config)
    unknown = sorted(state_dict.keys() - names.keys())
    missing = sorted(names.keys() - state_dict.keys())
    if unknown or missing:
        problems = []
        if unknown:
            problems.append(f"{len(unknown)} tensor(s) that are no parameter of the original USEV network: {unknown}")
        if missing:
            problems.append(f"no tensor for {len(missing)} parameter(s) of the original USEV network: {missing}")
        raise ValueError(
            f"the checkpoint has {'; and '.join(problems)}. Expected the complete state_dict of usev(N, L, B, H, K, "
            f"R, C) from src/usev-pretrain/network.py of github.com/zexupan/USEV (R={config.num_blocks} dual-path "
            f"blocks, {config.visual_num_blocks} V-TCN blocks, as read from its shapes)"
        )
    converted = {names[name]: _to_our_shape(name, tensor).contiguous() for name, tensor in state_dict.items()}
    with torch.device("meta"):
        expected = {name: tensor.shape for name, tensor in UsevForTargetSpeechExtraction(config).state_dict().items()}
    unfilled, surplus = sorted(expected.keys() - converted.keys()), sorted(converted.keys() - expected.keys())
    if unfilled or surplus:
        raise ValueError(
            f"the conversion leaves {len(unfilled)} tensor(s) of UsevForTargetSpeechExtraction unset: {unfilled}, and "
            f"makes {len(surplus)} it does not have: {surplus}; original_to_model_names must follow the model's "
            f"parameter names (a config override that adds modules, e.g. prior_embedding_dim, has no original weights)"
        )
    mismatched = [
        f"{original} {tuple(state_dict[original].shape)} -> {ours} {tuple(expected[ours])}"
        for original, ours in names.items()
        if converted[ours].shape != expected[ours]
    ]
    if mismatched:
        raise ValueError(
            f"{len(mismatched)} tensor(s) of the checkpoint do not fit the sizes read from its shapes: {mismatched}"
        )
    return converted


def usev_model_from_original_checkpoint(
    checkpoint: Mapping, chunk_size: int = ORIGINAL_CHUNK_SIZE, **overrides
) -> UsevForTargetSpeechExtraction:
    """:class:`UsevForTargetSpeechExtraction` (eval mode) with the weights of an original checkpoint."""
    config = usev_config_from_original_state_dict(checkpoint, chunk_size=chunk_size, **overrides)
    model = UsevForTargetSpeechExtraction(config)
    model.load_state_dict(convert_usev_original_state_dict(checkpoint, config), strict=True)
    return model.eval()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modeling_elegance.convert_usev_original_checkpoint", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--checkpoint", required=True, help="a .pt of the original USEV (its solver's model_dict.pt)")
    parser.add_argument("--output_dir", required=True, help="where the Hugging Face folder goes")
    parser.add_argument(
        "--chunk_size",
        type=int,
        default=ORIGINAL_CHUNK_SIZE,
        help=f"K, the frames per chunk the checkpoint was trained with (default {ORIGINAL_CHUNK_SIZE}, the original's)",
    )
    args = parser.parse_args(argv)
    checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    model = usev_model_from_original_checkpoint(checkpoint, chunk_size=args.chunk_size)
    model.save_pretrained(args.output_dir)
    config = model.config
    print(
        f"converted {len(model.state_dict())} tensors of {args.checkpoint} (N={config.encoder_channels}, "
        f"L={config.encoder_kernel_size}, B={config.bottleneck_channels}, H={config.hidden_size}, "
        f"K={config.chunk_size}, R={config.num_blocks}) to {args.output_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
