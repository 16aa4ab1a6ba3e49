import numpy as np
import pytest
import soundfile

from processing.real_data import MixtureListDataset, read_mixture_list


def _write_tree(root, clips):
    rng = np.random.default_rng(0)
    for split, speaker, clip, seconds in clips:
        audio_dir, visual_dir = root / "audio" / split / speaker, root / "visual" / split / speaker
        audio_dir.mkdir(parents=True, exist_ok=True)
        visual_dir.mkdir(parents=True, exist_ok=True)
        soundfile.write(
            audio_dir / f"{clip}.wav", (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32), 16000
        )
        np.save(visual_dir / f"{clip}.npy", rng.integers(0, 255, (int(seconds * 25), 24, 24), dtype=np.uint8))


@pytest.fixture
def tree(tmp_path):
    _write_tree(tmp_path, [("test", "id001", "a01", 3.0), ("test", "id002", "b01", 3.5), ("test", "id003", "c01", 3.0)])
    (tmp_path / "list.csv").write_text(
        "test,test,id001,a01,0,test,id002,b01,-4.5,48000\n"
        "test,test,id002,b01,0,test,id001,a01,3,test,id003,c01,-2,40000\n"
        "train,test,id003,c01,0,test,id001,a01,1,32000\n"
    )
    return tmp_path


def test_rows_are_parsed(tree):
    entries = read_mixture_list(str(tree / "list.csv"), partition="test")
    assert len(entries) == 2
    assert [s.speaker for s in entries[1].sources] == ["id002", "id001", "id003"]
    assert entries[0].min_length == 48000 and entries[0].sources[1].level_db == -4.5


def test_examples_are_mixed_on_the_fly_in_the_corpus_schema(tree):
    dataset = MixtureListDataset(str(tree / "list.csv"), str(tree / "audio"), str(tree / "visual"), partition="test")
    assert len(dataset) == 2
    example = dataset[1]
    assert example["mixture"].shape == (40000,) and example["lips"].shape == (62, 24, 24)
    assert example["interferer_speakers"] == ["id001", "id003"]
    assert example["sir_db"] == [-3.0, 2.0]
    target, interferers = example["target"].astype(np.float64), example["interferers"]
    np.testing.assert_allclose(example["mixture"], target + sum(interferers), atol=1e-6)
    measured = [10 * np.log10(np.sum(target**2) / np.sum(np.asarray(i, np.float64) ** 2)) for i in interferers]
    np.testing.assert_allclose(measured, example["sir_db"], atol=1e-3)
    assert example["target_activity"].shape == (62,)


def test_lip_embeddings_are_recognised(tree):
    np.save(tree / "visual" / "test" / "id001" / "a01.npy", np.zeros((75, 512), np.float32))
    example = MixtureListDataset(str(tree / "list.csv"), str(tree / "audio"), str(tree / "visual"), partition="test")[0]
    assert example["lip_embeds"].shape == (75, 512) and "lips" not in example


def test_missing_files_and_bad_rows_are_named(tree):
    (tree / "bad.csv").write_text("test,test,id001,a01,0,48000\n")
    with pytest.raises(
        ValueError, match="expected 'partition, \\[split, speaker, clip, dB\\] x C, min_len' with C >= 2, got 6 fields"
    ):
        read_mixture_list(str(tree / "bad.csv"))
    (tree / "missing.csv").write_text("test,test,id009,z01,0,test,id001,a01,0,16000\n")
    dataset = MixtureListDataset(str(tree / "missing.csv"), str(tree / "audio"), str(tree / "visual"))
    with pytest.raises(FileNotFoundError, match="audio for id009/z01 not found at"):
        dataset[0]
    with pytest.raises(ValueError, match="has no rows for partition 'val'"):
        MixtureListDataset(str(tree / "list.csv"), str(tree / "audio"), str(tree / "visual"), partition="val")
