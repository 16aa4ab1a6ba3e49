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
