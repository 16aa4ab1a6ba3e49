import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest

from processing.corpus_generation import generate_corpus


@pytest.fixture(scope="session")
def tiny_corpus_path(tmp_path_factory):
    """The `tiny` corpus, generated once per test session with two workers."""
    path = str(tmp_path_factory.mktemp("corpus") / "tiny")
    generate_corpus(path, preset="tiny", seed=0, num_workers=2, log=lambda message: None)
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tiny_corpus_path):
    from datasets import load_from_disk

    return load_from_disk(tiny_corpus_path).with_format("numpy")


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory):
    """Freshly initialised usev-tiny and usev-se-tiny, saved with their processors (for the evaluation tests)."""
    import torch

    from modeling_elegance import MODEL_CLASSES, preset_config
    from processing import EleganceProcessor

    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for name in ("usev-tiny", "usev-se-tiny"):
        torch.manual_seed(0)
        config = preset_config(name)
        MODEL_CLASSES[type(config)](config).save_pretrained(folder / name)
        EleganceProcessor.from_defaults(lip_roi_size=config.lip_roi_size).save_pretrained(folder / name)
        paths[name] = str(folder / name)
    return paths
