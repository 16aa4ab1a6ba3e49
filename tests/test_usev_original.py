"""Our USEV port against the original network (github.com/zexupan/USEV, ``src/usev-pretrain/network.py``).

``fixtures/usev_original.safetensors`` holds a down-sized original's weights, inputs and outputs (see
``fixtures/README.md``); the converted weights must give the original's outputs at every length, padding must keep
each row's output, and the converter's CLI must write a folder that ``AutoModel`` loads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModel

from modeling_elegance import UsevForTargetSpeechExtraction, preset_config
from modeling_elegance.convert_usev_original_checkpoint import (
    convert_usev_original_state_dict,
    main,
    original_to_model_names,
    usev_config_from_original_state_dict,
)

FIXTURE = Path(__file__).parent / "fixtures" / "usev_original.safetensors"
with safe_open(FIXTURE, "pt") as _file:
    METADATA = _file.metadata()
    TENSORS = {name: _file.get_tensor(name) for name in _file.keys()}
CASES = json.loads(METADATA["cases"])
CASE_IDS = [f"{case['samples']}-samples" for case in CASES]
ORIGINAL = {name.removeprefix("original."): value for name, value in TENSORS.items() if name.startswith("original.")}
# Outputs must agree to 1e-5 of their peak. Float32 rounding alone moves them by up to 4e-6 of it (the original's own
# float32 output is that far from its float64 output, and so is ours; in float64 the two agree to 1e-14); porting
# mistakes move them by far more: the chunk gap rule without the whole zero chunk by 1e-2, nearest instead of linear
# alignment of the visual cue by 0.4.
TOLERANCE = 1e-5


def assert_same_output(actual: torch.Tensor, expected: torch.Tensor):
    torch.testing.assert_close(actual, expected.to(actual.dtype), rtol=0, atol=TOLERANCE * expected.abs().max().item())


def case(index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``mixture (1, samples)`` and ``visual (1, video frames, 512)`` of case ``index``."""
    return TENSORS[f"mixture_{index}"], TENSORS[f"visual_{index}"]


@pytest.fixture(scope="module")
def model():
    config = usev_config_from_original_state_dict(ORIGINAL, chunk_size=int(METADATA["K"]))
    model = UsevForTargetSpeechExtraction(config)
    model.load_state_dict(convert_usev_original_state_dict(ORIGINAL), strict=True)
    return model.eval()


def test_config_is_read_from_the_shapes(model):
    config = model.config
    sizes = (config.encoder_channels, config.encoder_kernel_size, config.bottleneck_channels, config.hidden_size)
    assert sizes == tuple(int(METADATA[name]) for name in "NLBH")
    assert (config.num_blocks, config.chunk_size) == (int(METADATA["R"]), int(METADATA["K"]))
    assert (config.lip_input, config.lip_embedding_dim, config.visual_channels) == ("embeddings", 512, 256)
    assert (config.visual_hidden_channels, config.visual_num_blocks) == (512, 5)
    assert len(model.state_dict()) == len(ORIGINAL) == 107


def test_every_tensor_of_usev_base_maps_one_to_one():
    config = preset_config("usev-base", lip_input="embeddings")
    names = original_to_model_names(config)
    with torch.device("meta"):
        ours = UsevForTargetSpeechExtraction(config).state_dict().keys()
    assert len(names) == len(set(names.values())) == 203
    assert set(names.values()) == set(ours)


@pytest.mark.parametrize("index", range(len(CASES)), ids=CASE_IDS)
def test_matches_the_original_at_every_length(model, index):
    mixture, visual = case(index)
    assert visual.shape[1] == CASES[index]["video_frames"]
    with torch.no_grad():
        waveform = model(input_values=mixture, lip_embeds=visual).waveform
    assert_same_output(waveform, TENSORS[f"output_{index}"])
    assert_same_output(waveform, TENSORS[f"output_float64_{index}"])
    dropped = CASES[index]["dropped_samples"]
    if dropped:  # no encoder frame covers them: zero, as in the original
        assert torch.equal(waveform[:, -dropped:], torch.zeros(1, dropped))


def test_padded_batch_gives_each_row_its_output_alone(model):
    rows = [0, 3]  # 4800 samples, and 3986 (a whole zero chunk, 2 dropped samples)
    samples = max(case(index)[0].shape[1] for index in rows)
    frames = max(case(index)[1].shape[1] for index in rows)
    batch = {
        "input_values": torch.full((2, samples), 0.5),  # padding is not zero
        "audio_attention_mask": torch.zeros(2, samples, dtype=torch.long),
        "lip_embeds": torch.full((2, frames, 512), 3.0),
        "video_attention_mask": torch.zeros(2, frames, dtype=torch.long),
    }
    for row, index in enumerate(rows):
        mixture, visual = case(index)
        batch["input_values"][row, : mixture.shape[1]] = mixture[0]
        batch["audio_attention_mask"][row, : mixture.shape[1]] = 1
        batch["lip_embeds"][row, : visual.shape[1]] = visual[0]
        batch["video_attention_mask"][row, : visual.shape[1]] = 1
    with torch.no_grad():
        waveform = model(**batch).waveform
        for row, index in enumerate(rows):
            mixture, visual = case(index)
            length = mixture.shape[1]
            assert_same_output(
                waveform[row : row + 1, :length], model(input_values=mixture, lip_embeds=visual).waveform
            )
            assert_same_output(waveform[row : row + 1, :length], TENSORS[f"output_{index}"])
            assert torch.equal(waveform[row, length:], torch.zeros(samples - length))


def test_cli_writes_a_folder_that_auto_model_loads(tmp_path):
    checkpoint = tmp_path / "model_dict.pt"  # as the original's solver saves it after DDP training
    torch.save({"model": {f"module.{name}": value for name, value in ORIGINAL.items()}, "epoch": 3}, checkpoint)
    output_dir = tmp_path / "converted"
    assert main(["--checkpoint", str(checkpoint), "--output_dir", str(output_dir), "--chunk_size", METADATA["K"]]) == 0
    loaded = AutoModel.from_pretrained(output_dir).eval()
    assert type(loaded) is UsevForTargetSpeechExtraction
    assert (loaded.config.chunk_size, loaded.config.lip_input) == (int(METADATA["K"]), "embeddings")
    for index in (0, 4):
        mixture, visual = case(index)
        with torch.no_grad():
            waveform = loaded(input_values=mixture, lip_embeds=visual).waveform
        assert_same_output(waveform, TENSORS[f"output_{index}"])


def test_an_unknown_or_missing_tensor_is_named():
    layout = (
        "Expected the complete state_dict of usev(N, L, B, H, K, R, C) from src/usev-pretrain/network.py of "
        "github.com/zexupan/USEV (R=2 dual-path blocks, 5 V-TCN blocks, as read from its shapes)"
    )
    extra = {**ORIGINAL, "separator.speaker_embedding.weight": torch.zeros(4, 4)}
    message = (
        "the checkpoint has 1 tensor(s) that are no parameter of the original USEV network: "
        f"['separator.speaker_embedding.weight']. {layout}"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        convert_usev_original_state_dict(extra)

    missing = {name: value for name, value in ORIGINAL.items() if name != "separator.dual_rnn.1.inter_norm.bias"}
    message = (
        "the checkpoint has no tensor for 1 parameter(s) of the original USEV network: "
        f"['separator.dual_rnn.1.inter_norm.bias']. {layout}"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        convert_usev_original_state_dict({"model": missing})

    no_encoder = {name: value for name, value in ORIGINAL.items() if not name.startswith("encoder.")}
    message = (
        "the checkpoint has no 'encoder.conv1d_U.weight', which gives N and L; expected a state_dict of the original "
        "USEV network (src/usev-pretrain/network.py of github.com/zexupan/USEV)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        convert_usev_original_state_dict(no_encoder)
