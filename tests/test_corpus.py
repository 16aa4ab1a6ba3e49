import json
import os

import numpy as np
import pytest

from processing.corpus_generation import CORPUS_PRESETS, SPLITS, CorpusGenerator, generate_corpus
from processing.speakers import HELD_OUT_VARIANTS, IN_DISTRIBUTION_VARIANTS, UNSEEN_LANGUAGES
from processing.visual_impairment import IMPAIRMENT_TYPES, TEST_RATIOS

TINY = CORPUS_PRESETS["tiny"]
CLIP_SAMPLES = int(TINY.clip_seconds * 16000)
CLIP_FRAMES = int(TINY.clip_seconds * 25)


def test_every_split_has_the_schema(tiny_corpus):
    assert set(tiny_corpus) == set(SPLITS)
    for split, dataset in tiny_corpus.items():
        assert len(dataset) == TINY.split_sizes[split]
        example = dataset[0]
        assert example["mixture"].dtype == np.float32 and example["mixture"].shape == (CLIP_SAMPLES,)
        assert example["target"].shape == (CLIP_SAMPLES,)
        assert example["interferers"].shape == (SPLITS[split].num_interferers, CLIP_SAMPLES)
        assert dataset.features["lips"].dtype == "uint8"
        assert example["lips"].shape == (CLIP_FRAMES, TINY.roi_size, TINY.roi_size)
        assert 0 <= example["lips"].min() and example["lips"].max() <= 255
        assert example["sampling_rate"] == 16000 and example["fps"] == 25
        assert example["target_activity"].shape == (CLIP_FRAMES,)
        assert set(np.unique(example["target_activity"])) <= {0, 1}
        assert isinstance(example["transcript"], str) and example["transcript"]
        assert isinstance(example["previous_turn"], str)
        assert len(example["sir_db"]) == len(example["interferer_speakers"]) == SPLITS[split].num_interferers
        assert example["target_speaker"] not in list(example["interferer_speakers"])
        words = example["word_timings"]
        assert all(0 <= w["start"] <= w["end"] <= TINY.clip_seconds for w in words)


def test_mixture_holds_the_stored_sirs(tiny_corpus):
    for split in ("train", "test_3mix", "test_unseen_lang"):
        for example in tiny_corpus[split]:
            target, interferers = example["target"].astype(np.float64), example["interferers"].astype(np.float64)
            np.testing.assert_allclose(example["mixture"], target + interferers.sum(axis=0), atol=1e-6)
            measured = [10 * np.log10(np.sum(target**2) / np.sum(i**2)) for i in interferers]
            np.testing.assert_allclose(measured, example["sir_db"], atol=1e-3)
            assert all(-10 <= sir <= 10 for sir in example["sir_db"])
            assert np.abs(example["mixture"]).max() <= 0.95 + 1e-6


def _speakers(dataset):
    return set(dataset["target_speaker"]) | {s for row in dataset["interferer_speakers"] for s in row}


def test_test_speakers_never_appear_in_training(tiny_corpus):
    train = _speakers(tiny_corpus["train"])
    for split in SPLITS:
        if split != "train":
            assert not train & _speakers(tiny_corpus[split]), split
    assert all(s.startswith("train-") for s in train)


def test_speaker_pools_hold_out_voices():
    generator = CorpusGenerator(TINY, seed=0)
    train_voices = {s.voice.split("+")[1] for s in generator._speakers("train")}
    test_voices = {s.voice.split("+")[1] for s in generator._speakers("test") + generator._speakers("validation")}
    ood = generator._speakers("ood")
    assert not train_voices & test_voices
    assert {s.voice.split("+")[1] for s in ood} <= set(HELD_OUT_VARIANTS)
    assert not set(HELD_OUT_VARIANTS) & set(IN_DISTRIBUTION_VARIANTS)
    assert all(s.pitch < 25 or s.pitch > 75 for s in ood)
    total = sum(len(generator._speakers(pool)) for pool in ("train", "validation", "test", "unseen_lang", "ood"))
    assert total >= 40


def _mouth_darkness(lips):
    frames = lips.astype(np.float32)
    height, width = frames.shape[1:]
    return -frames[:, int(0.35 * height) : int(0.8 * height), int(0.25 * width) : int(0.75 * width)].mean(axis=(1, 2))


def _frame_rms(waveform, frames):
    return np.array([np.sqrt(np.mean(chunk**2)) for chunk in np.array_split(waveform, frames)])


def test_lip_motion_follows_the_speech(tiny_corpus):
    dataset = tiny_corpus["train"]
    matched, mismatched = [], []
    for index in range(len(dataset)):
        opening = _mouth_darkness(dataset[index]["lips"])
        matched.append(np.corrcoef(opening, _frame_rms(dataset[index]["target"], len(opening)))[0, 1])
        other = dataset[(index + 1) % len(dataset)]["target"]
        mismatched.append(np.corrcoef(opening, _frame_rms(other, len(opening)))[0, 1])
    # measured on seed 0: 0.48 for the own speech, 0.09 for another example's
    assert np.mean(matched) > 0.4
    assert abs(np.mean(mismatched)) < 0.2


def test_activity_labels_match_the_target_energy(tiny_corpus):
    for example in tiny_corpus["test_switch"]:
        activity = example["target_activity"].astype(bool)
        rms = _frame_rms(example["target"], len(activity))
        assert 0 < activity.mean() < 0.7
        assert rms[~activity].mean() < 0.2 * rms[activity].mean()


def test_impaired_split_covers_every_type_and_ratio(tiny_corpus):
    dataset = tiny_corpus["test_impaired"]
    cells = {(kind, round(float(ratio), 1)) for kind, ratio in zip(dataset["impairment"], dataset["impaired_ratio"])}
    assert cells == {(kind, ratio) for kind in IMPAIRMENT_TYPES for ratio in TEST_RATIOS}
    for example in dataset:
        if example["impairment"] == "full_mask":
            blank = int((example["lips"].reshape(CLIP_FRAMES, -1).max(axis=1) == 0).sum())
            assert blank == round(float(example["impaired_ratio"]) * CLIP_FRAMES)
    assert set(tiny_corpus["test"]["impairment"]) == {"none"}


def test_scenario_splits(tiny_corpus):
    assert set(tiny_corpus["test_unseen_lang"]["language"]) <= set(UNSEEN_LANGUAGES)
    assert set(tiny_corpus["train"]["language"]) == {"en"}
    assert set(tiny_corpus["test_ood"]["domain"]) <= {"science", "history", "literature"}
    assert not set(tiny_corpus["train"]["domain"]) & {"science", "history", "literature"}


def test_corpus_does_not_depend_on_the_number_of_workers(tiny_corpus):
    generator = CorpusGenerator(TINY, seed=0)
    for split, index in (("train", 0), ("train", 23), ("test_3mix", 3), ("test_impaired", 17)):
        example = generator.example(split, index)
        stored = tiny_corpus[split][index]
        for column in ("mixture", "target", "lips", "target_activity"):
            np.testing.assert_array_equal(stored[column], example[column], err_msg=f"{split}[{index}].{column}")
        assert stored["transcript"] == example["transcript"]


def test_other_seed_gives_other_corpus():
    first = CorpusGenerator(TINY, seed=0).example("train", 0)
    second = CorpusGenerator(TINY, seed=1).example("train", 0)
    assert not np.array_equal(first["mixture"], second["mixture"])


def test_interrupted_generation_resumes(tmp_path, monkeypatch):
    out = str(tmp_path / "corpus")
    original = CorpusGenerator.example

    def fail_on_test(self, split, index):
        if split == "test":
            raise KeyboardInterrupt
        return original(self, split, index)

    monkeypatch.setattr(CorpusGenerator, "example", fail_on_test)
    with pytest.raises(KeyboardInterrupt):
        generate_corpus(out, preset="tiny", num_workers=1, splits=["validation", "test"], log=lambda m: None)
    assert not os.path.exists(out)
    kept = os.path.join(out + ".partial", "validation")
    assert os.path.isdir(kept)
    stamp = os.path.getmtime(kept)

    monkeypatch.setattr(CorpusGenerator, "example", original)
    messages = []
    generate_corpus(out, preset="tiny", num_workers=1, splits=["validation", "test"], log=messages.append)
    assert messages[0] == "validation: already generated, kept"
    assert os.path.getmtime(os.path.join(out, "validation")) == stamp
    assert not os.path.exists(out + ".partial")
    with open(os.path.join(out, "dataset_dict.json")) as stream:
        assert json.load(stream) == {"splits": ["validation", "test"]}

    with pytest.raises(FileExistsError, match="already holds a corpus; pass --overwrite to replace it"):
        generate_corpus(out, preset="tiny", splits=["validation"])


def test_interrupted_run_with_other_settings_is_refused(tmp_path):
    out = str(tmp_path / "corpus")
    os.makedirs(out + ".partial")
    with open(os.path.join(out + ".partial", "corpus_settings.json"), "w") as stream:
        json.dump({"preset": "other"}, stream)
    with pytest.raises(ValueError, match="holds an interrupted run with other settings"):
        generate_corpus(out, preset="tiny", splits=["validation"])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"unknown preset 'huge'; choose one of \['default', 'full', 'tiny'\]"):
        generate_corpus("/tmp/never", preset="huge")
    with pytest.raises(ValueError, match=r"unknown split\(s\) \['dev'\]"):
        generate_corpus("/tmp/never", preset="tiny", splits=["dev"])


def test_cli_summary_and_contact_sheet(tiny_corpus_path, tmp_path, capsys):
    from PIL import Image

    from processing.cli import main

    png = str(tmp_path / "sheet.png")
    assert main(["summary", tiny_corpus_path, "--contact-sheet", png, "--num-examples", "2"]) == 0
    printed = capsys.readouterr().out
    assert "test_unseen_lang" in printed and "contact sheet written" in printed
    image = Image.open(png)
    assert image.size[0] > 100 and image.size[1] > 100
    assert main(["generate", "--preset", "tiny", "--out", tiny_corpus_path]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
