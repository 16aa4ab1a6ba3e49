"""The configs: presets, the Auto mapping, and settings that contradict the config class."""

from __future__ import annotations

import doctest

import pytest
from transformers import AutoConfig, AutoModel

from modeling_elegance import (
    MODEL_CLASSES,
    PRESETS,
    AVMambaConfig,
    AVMambaSEConfig,
    UsevConfig,
    UsevSEConfig,
    preset_config,
)


def test_preset_config_applies_overrides_and_rejects_unknown_names():
    config = preset_config("usev-base", num_blocks=2, lip_input="embeddings")
    assert isinstance(config, UsevConfig) and config.num_blocks == 2 and config.hidden_size == 128
    assert isinstance(preset_config("av-mamba-tiny"), AVMambaConfig)
    with pytest.raises(ValueError, match=r"unknown preset 'usev-huge'; choose one of usev-base, av-mamba-base"):
        preset_config("usev-huge")
    with pytest.raises(ValueError, match=r"lip_input must be one of \('frames', 'embeddings'\), got 'video'"):
        preset_config("usev-tiny", lip_input="video")


def test_auto_config_maps_every_model_type():
    for config_class, model_class in MODEL_CLASSES.items():
        config = AutoConfig.for_model(config_class.model_type)
        assert type(config) is config_class
        assert (
            type(AutoModel.from_config(preset_config(next(k for k, v in PRESETS.items() if v[0] is config_class))))
            is model_class
        )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: UsevConfig(sequence_model="mamba"),
            r"UsevConfig has sequence_model='lstm', got sequence_model='mamba'; for Mamba blocks use AVMambaConfig",
        ),
        (
            lambda: AVMambaConfig(sequence_model="lstm"),
            r"AVMambaConfig has sequence_model='mamba', got sequence_model='lstm'; for BLSTM blocks use UsevConfig",
        ),
        (
            lambda: UsevSEConfig(lip_input="frames"),
            r"UsevSEConfig has lip_input=None, got lip_input='frames'; it is audio-only; for lips use UsevConfig",
        ),
        (
            lambda: AVMambaSEConfig(lip_input="embeddings"),
            r"AVMambaSEConfig has lip_input=None, got lip_input='embeddings'; it is audio-only; for lips use AVMambaConfig",
        ),
    ],
)
def test_settings_that_contradict_the_config_class_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("config_class", [UsevConfig, AVMambaConfig, UsevSEConfig, AVMambaSEConfig])
def test_every_config_survives_a_save_and_load(config_class, tmp_path):
    config = config_class(num_blocks=2)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is config_class
    assert {**loaded.to_dict(), "_name_or_path": ""} == {**config.to_dict(), "_name_or_path": ""}


@pytest.mark.parametrize(
    "name", ["configuration_elegance", "configuration_backbones", "configuration_lip_reading", "configuration_avur"]
)
def test_the_config_docstring_examples_run(name):
    import importlib

    module = importlib.import_module(f"modeling_elegance.{name}")
    failures, attempted = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert attempted > 0 and failures == 0


def test_config_overrides_change_a_presets_fields_with_their_types():
    from training.arguments import GuidanceArguments
    from training.train import build_backbone, parse_config_overrides

    assert parse_config_overrides("usev-tiny", "encoder_channels=256,loss=activity_aware") == {
        "encoder_channels": 256,
        "loss": "activity_aware",
    }
    assert parse_config_overrides("usev-tiny", None) == {}
    args = GuidanceArguments(backbone="usev-tiny", data="unused", config_overrides="encoder_channels=96")
    assert build_backbone(args, llm_width=None).encoder.conv.out_channels == 96


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("encoder_chanels=3", r"--config_overrides: usev-tiny has no config field encoder_chanels"),
        ("encoder_channels", r"write comma-separated name=value pairs, e.g. 'encoder_channels=256'"),
        ("encoder_channels=many", r"--config_overrides: encoder_channels must be of type int, got 'many'"),
    ],
)
def test_config_overrides_errors_name_the_problem(text, message):
    from training.train import parse_config_overrides

    with pytest.raises(ValueError, match=message):
        parse_config_overrides("usev-tiny", text)


def test_config_overrides_are_refused_for_a_saved_model(tmp_path):
    from training.arguments import GuidanceArguments
    from training.train import build_backbone

    args = GuidanceArguments(backbone=str(tmp_path), data="unused", config_overrides="encoder_channels=96")
    with pytest.raises(ValueError, match=r"--config_overrides applies to a backbone built from a preset"):
        build_backbone(args, llm_width=None)
