import re

import numpy as np
import pytest
import soundfile
import torch
from transformers import AutoProcessor

from processing import EleganceFeatureExtractor, EleganceProcessor, LipVideoProcessor


@pytest.fixture(scope="module")
def processor():
    return EleganceProcessor.from_defaults(lip_roi_size=32)


def _tone(seconds, rate=16000):
    return (0.1 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def test_audio_batch_is_padded_with_its_own_mask():
    out = EleganceFeatureExtractor()([_tone(1.0), _tone(0.5)], return_tensors="pt")
    assert out["input_values"].shape == (2, 16000)
    assert out["audio_attention_mask"].sum(dim=1).tolist() == [16000, 8000]
    assert torch.all(out["input_values"][1, 8000:] == 0)
    np.testing.assert_array_equal(out["input_values"][0].numpy(), _tone(1.0))


def test_resampling_with_sampling_rate():
    out = EleganceFeatureExtractor()(_tone(1.0, 44100), sampling_rate=44100)
    assert len(out["input_values"][0]) == 16000


def test_known_wrong_rate_without_sampling_rate_is_refused(tmp_path):
    path = tmp_path / "clip.wav"
    soundfile.write(path, _tone(0.5, 44100), 44100)
    message = "audio example 0 is 44100 Hz, the model expects 16000 Hz; pass sampling_rate=44100 to resample"
    with pytest.raises(ValueError, match=re.escape(message)):
        EleganceFeatureExtractor()(str(path))
    with pytest.raises(ValueError, match=re.escape(message)):
        EleganceFeatureExtractor()({"array": _tone(0.5, 44100), "sampling_rate": 44100})
    assert len(EleganceFeatureExtractor()(str(path), sampling_rate=44100)["input_values"][0]) == 8000


def test_stereo_is_downmixed_to_the_channel_mean():
    left, right = _tone(0.5), 0.5 * _tone(0.5)
    for stereo in (np.stack([left, right]), np.stack([left, right], axis=1)):
        out = EleganceFeatureExtractor()(stereo)
        np.testing.assert_allclose(out["input_values"][0], (left + right) / 2, atol=1e-7)


def test_int16_is_scaled():
    out = EleganceFeatureExtractor()(np.array([16384, -32768], dtype=np.int16))
    np.testing.assert_allclose(out["input_values"][0], [0.5, -1.0])


@pytest.mark.parametrize(
    "audio, message",
    [
        (
            np.array([0.1, np.nan, 0.2], dtype=np.float32),
            "audio example 0 contains NaN or infinite values; clean or drop it",
        ),
        (
            np.array([0.1, np.inf], dtype=np.float32),
            "audio example 0 contains NaN or infinite values; clean or drop it",
        ),
        (np.zeros(0, dtype=np.float32), "audio example 0 is empty (0 samples)"),
        (
            np.zeros((3, 4, 5), dtype=np.float32),
            "audio example 0 has 3 dimensions (3, 4, 5); pass one waveform (samples,) or (channels, samples) per example",
        ),
        (
            np.zeros((20, 300), dtype=np.float32),
            "audio example 0 has shape (20, 300); pass one waveform (samples,) or (channels, samples) per example, and a batch as a list of waveforms",
        ),
    ],
)
def test_bad_audio_gets_a_clear_error(audio, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        EleganceFeatureExtractor()(audio)


def test_lip_clips_are_resized_normalised_and_padded():
    lips = LipVideoProcessor(size=32)
    clip = np.full((10, 64, 64), 255, dtype=np.uint8)
    out = lips([clip, np.zeros((6, 32, 32), dtype=np.uint8)], return_tensors="pt")
    assert out["lip_frames"].shape == (2, 10, 32, 32)
    assert out["video_attention_mask"].sum(dim=1).tolist() == [10, 6]
    torch.testing.assert_close(out["lip_frames"][0], torch.full((10, 32, 32), (1.0 - 0.421) / 0.165))
    torch.testing.assert_close(out["lip_frames"][1, :6], torch.full((6, 32, 32), -0.421 / 0.165))
    float_clip = lips(clip.astype(np.float32) / 255.0)["lip_frames"][0]
    np.testing.assert_allclose(float_clip, lips(clip)["lip_frames"][0], atol=1e-6)
    np.testing.assert_allclose(lips(clip[..., None])["lip_frames"][0], lips(clip)["lip_frames"][0])
    # datasets' numpy format widens uint8 pixels to int64
    np.testing.assert_array_equal(lips(clip.astype(np.int64))["lip_frames"][0], lips(clip)["lip_frames"][0])


@pytest.mark.parametrize(
    "clip, message",
    [
        (
            np.zeros((64, 64), dtype=np.uint8),
            "lip clip 0 has shape (64, 64); pass grayscale mouth ROIs as (frames, height, width)",
        ),
        (
            np.zeros((5, 64, 64, 3), dtype=np.uint8),
            "lip clip 0 has shape (5, 64, 64, 3) with colour channels; convert the mouth ROI to grayscale; pass grayscale mouth ROIs as (frames, height, width)",
        ),
        (
            np.full((5, 8, 8), 200.0, dtype=np.float32),
            "lip clip 0 is float with values in [200, 200]; pass uint8 pixels in [0, 255] or floats scaled to [0, 1] (divide by 255)",
        ),
        (
            np.full((5, 8, 8), -0.5, dtype=np.float32),
            "lip clip 0 is float with values in [-0.5, -0.5]; pass uint8 pixels in [0, 255] or floats scaled to [0, 1] (divide by 255)",
        ),
        (
            np.full((5, 8, 8), 300, dtype=np.int64),
            "lip clip 0 has integer pixels in [300, 300]; pass 8-bit pixels in [0, 255]",
        ),
        (
            np.zeros((5, 8, 8), dtype=np.complex64),
            "lip clip 0 has dtype complex64; pass uint8 pixels in [0, 255] or floats in [0, 1]",
        ),
    ],
)
def test_bad_lip_clips_get_a_clear_error(clip, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        LipVideoProcessor(size=32)(clip)


def test_processor_keeps_every_mask(processor):
    out = processor(
        audio=[_tone(1.0), _tone(0.4)],
        videos=[np.zeros((25, 32, 32), np.uint8), np.zeros((10, 32, 32), np.uint8)],
        text=["hello there friend", "hi"],
        return_tensors="pt",
    )
    assert out["audio_attention_mask"].shape == (2, 16000)
    assert out["video_attention_mask"].shape == (2, 25)
    # the tokenizer's mask is not overwritten by the audio mask
    assert out["attention_mask"].shape == out["input_ids"].shape
    assert out["attention_mask"].sum(dim=1).tolist()[1] < out["attention_mask"].shape[1]


def test_audio_and_video_durations_must_agree(processor):
    processor(audio=_tone(1.0), videos=np.zeros((26, 32, 32), np.uint8))  # one frame of slack
    message = (
        "example 0: the audio lasts 1.00 s but the lip clip has 20 frames at 25 fps (0.80 s); they must agree "
        "within one frame (0.04 s). Trim or pad one of them, or check the clip's frame rate"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        processor(audio=_tone(1.0), videos=np.zeros((20, 32, 32), np.uint8))


def test_processor_round_trip(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, EleganceProcessor)
    inputs = dict(
        audio=_tone(1.0),
        videos=np.random.default_rng(0).integers(0, 255, (25, 40, 40), dtype=np.uint8),
        text="good morning",
    )
    before, after = processor(**inputs, return_tensors="np"), loaded(**inputs, return_tensors="np")
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])
    assert loaded.lip_feature_extractor.size == 32 and loaded.audio_feature_extractor.sampling_rate == 16000
