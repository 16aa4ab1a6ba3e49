"""Dynamic mixing: deterministic draws, mixtures at exactly the drawn SIRs and SNRs, distinct speakers, noise for
speech enhancement, and the defaults `elegance-train` picks from what the training split holds."""

import numpy as np
import pytest
from transformers import TrainingArguments

from processing.pitch import median_pitch_hz, voice_register
from training.arguments import GuidanceArguments
from training.dynamic_mixing import DynamicMixer
from training.train import build_mixer, build_run


def _energy_ratio_db(signal, other) -> float:
    return 10 * np.log10(np.sum(signal.astype(np.float64) ** 2) / np.sum(other.astype(np.float64) ** 2))


def test_dynamic_mixing_is_deterministic_and_mixes_at_the_drawn_sir(tiny_corpus):
    train = tiny_corpus["train"]
    mixer = DynamicMixer(train)
    example = dict(train[3])
    first = mixer.remix(example, np.random.default_rng([0, 0, 3, 1]))
    again = mixer.remix(example, np.random.default_rng([0, 0, 3, 1]))
    other = mixer.remix(example, np.random.default_rng([0, 1, 3, 1]))
    assert np.array_equal(first["mixture"], again["mixture"]) and not np.array_equal(first["mixture"], other["mixture"])
    for mixed in (first, other):
        target, (interferer,) = mixed["target"], mixed["interferers"]
        assert mixed["interferer_speakers"][0] != example["target_speaker"]
        sir = 10 * np.log10(np.sum(target.astype(np.float64) ** 2) / np.sum(interferer.astype(np.float64) ** 2))
        assert sir == pytest.approx(mixed["sir_db"][0], abs=1e-3) and -10 <= mixed["sir_db"][0] <= 10
        assert (
            np.allclose(mixed["mixture"], target + interferer, atol=1e-6)
            and np.abs(mixed["mixture"]).max() <= 0.95 + 1e-6
        )
        # the target keeps its waveform shape, its lips and its text
        scale = np.dot(target, example["target"]) / np.dot(example["target"], example["target"])
        assert np.allclose(target, scale * example["target"], atol=1e-6)
        assert np.array_equal(mixed["lips"], example["lips"]) and mixed["transcript"] == example["transcript"]


def test_dynamic_mixing_with_two_interferers_takes_distinct_speakers(tiny_corpus):
    mixer = DynamicMixer(tiny_corpus["train"], num_interferers=2)
    for index in range(5):
        mixed = mixer.remix(dict(tiny_corpus["train"][index]), np.random.default_rng(index))
        speakers = [str(tiny_corpus["train"][index]["target_speaker"])] + mixed["interferer_speakers"]
        assert len(set(speakers)) == 3 and len(mixed["sir_db"]) == 2


def test_training_draws_a_new_mixture_each_epoch_only_with_dynamic_mixing(tiny_corpus_path, tmp_path):
    def run(dynamic):
        args = GuidanceArguments(
            backbone="usev-tiny",
            data=tiny_corpus_path,
            eval_split="none",
            embedding_cache_dir=str(tmp_path),
            dynamic_mixing=dynamic,
        )
        return build_run(
            args, TrainingArguments(output_dir="/tmp/unused", use_cpu=True, report_to="none"), log=lambda m: None
        )[2]

    mixed, stored = run(True), run(False)
    assert np.array_equal(stored[2]["mixture"], stored.dataset[2]["mixture"])
    assert not np.array_equal(mixed[2]["mixture"], mixed.dataset[2]["mixture"])
    assert np.array_equal(mixed[2]["mixture"], mixed[2]["mixture"])
    first = mixed[2]["mixture"]
    mixed.set_epoch(1)
    assert not np.array_equal(mixed[2]["mixture"], first)


def test_noise_only_mixing_for_speech_enhancement_is_at_the_drawn_snr(tiny_corpus):
    train = tiny_corpus["train_noisy"]
    mixer = DynamicMixer(train, num_interferers=0, noise_snr_range_db=(-5.0, 15.0))
    stored_kinds = set(train["noise_type"])
    for index in range(6):
        example = dict(train[index])
        mixed = mixer.remix(example, np.random.default_rng([0, 0, index]))
        again = mixer.remix(example, np.random.default_rng([0, 0, index]))
        assert np.array_equal(mixed["mixture"], again["mixture"])
        assert mixed["interferers"] == [] and mixed["sir_db"] == [] and mixed["noise_type"] in stored_kinds
        assert -5.0 <= mixed["snr_db"] <= 15.0
        assert _energy_ratio_db(mixed["target"], mixed["noise"]) == pytest.approx(mixed["snr_db"], abs=1e-3)
        np.testing.assert_allclose(mixed["mixture"], mixed["target"] + mixed["noise"], atol=1e-6)
        assert not np.array_equal(mixed["mixture"], example["mixture"])  # new noise, new SNR


def test_talkers_and_noise_together_and_noise_made_on_the_spot(tiny_corpus):
    """A split without stored noise (train) gets coloured or nonstationary noise made from the draw."""
    mixer = DynamicMixer(tiny_corpus["train"], num_interferers=1, noise_snr_range_db=(0.0, 5.0))
    kinds = set()
    for index in range(8):
        mixed = mixer.remix(dict(tiny_corpus["train"][index]), np.random.default_rng(index))
        (interferer,) = mixed["interferers"]
        kinds.add(mixed["noise_type"])
        assert _energy_ratio_db(mixed["target"], interferer) == pytest.approx(mixed["sir_db"][0], abs=1e-3)
        assert _energy_ratio_db(mixed["target"], mixed["noise"]) == pytest.approx(mixed["snr_db"], abs=1e-3)
        np.testing.assert_allclose(mixed["mixture"], mixed["target"] + interferer + mixed["noise"], atol=1e-6)
    assert kinds == {"coloured", "nonstationary"}


def test_the_mixing_follows_the_training_split(tiny_corpus_path, tiny_corpus):
    def mixer(split, **flags):
        args = GuidanceArguments(backbone="usev-se-tiny", data=tiny_corpus_path, train_split=split, **flags)
        return build_mixer(args, tiny_corpus[split])

    noisy = mixer("train_noisy")
    assert noisy.num_interferers == 0 and noisy.noise_snr_range_db == (-5.0, 15.0)
    talkers = mixer("train")
    assert talkers.num_interferers == 1 and talkers.noise_snr_range_db is None
    both = mixer("train", dynamic_noise_snr_db="0,10", num_interferers=2)
    assert both.num_interferers == 2 and both.noise_snr_range_db == (0.0, 10.0)
    assert mixer("train_noisy", dynamic_noise_snr_db="none", num_interferers=1).noise_snr_range_db is None


def test_bad_mixing_settings_are_named(tiny_corpus_path, tiny_corpus):
    with pytest.raises(ValueError, match=r"^dynamic mixing needs at least 1 interferer, or noise \(an SNR range\)"):
        DynamicMixer(tiny_corpus["train"], num_interferers=0)
    args = GuidanceArguments(backbone="usev-se-tiny", data=tiny_corpus_path, dynamic_noise_snr_db="-5")
    with pytest.raises(ValueError, match=r"^--dynamic_noise_snr_db takes LOW,HIGH in dB \(e.g. -5,15\) or none"):
        build_mixer(args, tiny_corpus["train"])
    args = GuidanceArguments(backbone="usev-se-tiny", data=tiny_corpus_path, dynamic_noise_snr_db="10,0")
    with pytest.raises(ValueError, match=r"^--dynamic_noise_snr_db takes LOW,HIGH with LOW <= HIGH, got '10,0'$"):
        build_mixer(args, tiny_corpus["train"])


def test_speech_enhancement_trains_on_the_target_in_new_noise(tiny_corpus_path, tmp_path):
    args = GuidanceArguments(
        backbone="usev-se-tiny",
        data=tiny_corpus_path,
        train_split="train_noisy",
        eval_split="validation_noisy",
        guidance="cmkt",
        embedding_cache_dir=str(tmp_path),
    )
    training_args = TrainingArguments(output_dir="/tmp/unused", use_cpu=True, report_to="none")
    _, _, train, evaluation, _, _ = build_run(args, training_args, log=lambda m: None)
    drawn, stored = train[1], train.dataset[1]
    assert not np.array_equal(drawn["mixture"], stored["mixture"]) and drawn["interferers"] == []
    assert _energy_ratio_db(drawn["target"], drawn["mixture"] - drawn["target"]) == pytest.approx(
        drawn["snr_db"], abs=1e-3
    )
    assert np.array_equal(evaluation[1]["mixture"], evaluation.dataset[1]["mixture"])  # evaluation keeps its noise


def test_pitch_matched_mixing_draws_interferers_among_the_targets_nearest_voices(tiny_corpus_path, tiny_corpus):
    train = tiny_corpus["train"]
    args = GuidanceArguments(backbone="usev-tiny", data=tiny_corpus_path, pitch_matched_share=1.0)
    mixer = build_mixer(args, train)
    pitch = mixer.speaker_pitch_hz
    assert set(pitch) == set(mixer.speakers) and all(60 <= hz <= 450 for hz in pitch.values())
    size = max(1, round(0.1 * len(pitch)))
    for index in range(12):
        example = dict(train[index])
        target = str(example["target_speaker"])
        by_distance = sorted((s for s in pitch if s != target), key=lambda s: abs(np.log(pitch[s] / pitch[target])))
        assert mixer.pitch_neighbours[target] == by_distance[:size]
        mixed = mixer.remix(example, np.random.default_rng([0, 0, index]))
        assert mixed["interferer_speakers"][0] in mixer.pitch_neighbours[target]
        assert mixed["interferer_speakers"][0] != target
        again = mixer.remix(example, np.random.default_rng([0, 0, index]))
        assert np.array_equal(mixed["mixture"], again["mixture"])
    with pytest.raises(ValueError, match=r"^--pitch_matched_share must lie in \[0, 1\], got 1.5$"):
        GuidanceArguments(backbone="usev-tiny", data=tiny_corpus_path, pitch_matched_share=1.5)
    with pytest.raises(ValueError, match=r"^the pitch-matched share is a probability in \[0, 1\], got -0.1$"):
        DynamicMixer(train, pitch_matched_share=-0.1)


def test_the_median_pitch_of_a_voiced_sound_and_of_silence():
    sampling_rate = 16000
    time = np.arange(2 * sampling_rate) / sampling_rate
    for pitch in (110.0, 240.0):
        # a voice's pitch is never steady: a 3 Hz vibrato of 5% (a perfectly steady 240 Hz tone is read an octave low)
        phase = 2 * np.pi * np.cumsum(pitch * (1 + 0.05 * np.sin(2 * np.pi * 3 * time))) / sampling_rate
        voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
        voiced[: sampling_rate // 2] = 0  # a pause, which does not count
        # within 5%: the detector works in whole-sample lags (1.5% apart at 240 Hz), with the vibrato around them
        assert median_pitch_hz(voiced, sampling_rate) == pytest.approx(pitch, rel=0.05)
        assert voice_register(voiced, sampling_rate) == ("low" if pitch < 150 else "high")
    assert np.isnan(median_pitch_hz(np.zeros(sampling_rate), sampling_rate))
    assert voice_register(np.zeros(sampling_rate), sampling_rate) == "unvoiced"
    with pytest.raises(ValueError, match=r"^median_pitch_hz takes one channel, a \(samples,\) waveform; got shape"):
        median_pitch_hz(np.zeros((2, sampling_rate)), sampling_rate)
