"""Conversation text from `chatterbot-corpus`, kept as turns so every line knows the turn before it.

The English categories in :data:`HELD_OUT_DOMAINS` never reach train/validation/test: they are the out-of-domain
text of ``test_ood``. The remaining English conversations are split by a hash of their content, so no
conversation is shared between training and test text.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

import yaml

LANGUAGE_FOLDERS = {"en": "english", "it": "italian", "pt": "portuguese", "es": "spanish", "fr": "french"}
HELD_OUT_DOMAINS = ("science", "history", "literature")
# code listings and shell commands are not speech
EXCLUDED_DOMAINS = ("coding", "tech_support")
# fraction of in-domain English conversations for each text split
TEXT_SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


@dataclass(frozen=True)
class Turn:
    """One line of a conversation and the line spoken before it (empty for a conversation's first line)."""

    text: str
    previous_turn: str
    language: str
    domain: str
    conversation_id: str
    position: int


def _corpus_directory() -> str:
    try:
        import chatterbot_corpus.corpus
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise ImportError("the embedded corpus needs chatterbot-corpus: pip install chatterbot-corpus") from error
    return chatterbot_corpus.corpus.DATA_DIRECTORY


_SPEAKABLE = re.compile(r"[^\W_]", re.UNICODE)


def _clean(line) -> str:
    # a few YAML entries are numbers or contain markup; keep plain sentences only
    text = " ".join(str(line).split())
    return text if _SPEAKABLE.search(text) and not any(mark in text for mark in ("<", "`", "http", "{", "=")) else ""


def load_conversations(language: str) -> list[list[Turn]]:
    """All conversations of one language, each a list of turns in order."""
    if language not in LANGUAGE_FOLDERS:
        raise ValueError(
            f"no chatterbot-corpus text for language {language!r}; choose one of {sorted(LANGUAGE_FOLDERS)}"
        )
    folder = os.path.join(_corpus_directory(), LANGUAGE_FOLDERS[language])
    conversations = []
    for file_name in sorted(os.listdir(folder)):
        if not file_name.endswith(".yml"):
            continue
        domain = file_name[: -len(".yml")]
        if domain in EXCLUDED_DOMAINS:
            continue
        with open(os.path.join(folder, file_name), encoding="utf-8") as stream:
            content = yaml.safe_load(stream) or {}
        for conversation in content.get("conversations") or []:
            lines = [_clean(line) for line in conversation]
            lines = [line for line in lines if line]
            if not lines:
                continue
            conversation_id = hashlib.sha1("\n".join(lines).encode()).hexdigest()[:12]
            turns = [
                Turn(line, lines[position - 1] if position else "", language, domain, conversation_id, position)
                for position, line in enumerate(lines)
            ]
            conversations.append(turns)
    return conversations


def _text_split_of(conversation_id: str) -> str:
    bucket = int(conversation_id, 16) % 1000 / 1000.0
    cumulative = 0.0
    for split, fraction in TEXT_SPLIT_FRACTIONS.items():
        cumulative += fraction
        if bucket < cumulative:
            return split
    return "test"


def conversation_pool(text_split: str) -> list[list[Turn]]:
    """Conversations for a text split.

    ``train``, ``validation``, ``test``: disjoint in-domain English; ``ood``: English of the held-out domains;
    ``unseen_lang``: Italian, Portuguese, Spanish and French.
    """
    if text_split in TEXT_SPLIT_FRACTIONS:
        return [
            conversation
            for conversation in load_conversations("en")
            if conversation[0].domain not in HELD_OUT_DOMAINS
            and _text_split_of(conversation[0].conversation_id) == text_split
        ]
    if text_split == "ood":
        return [conversation for conversation in load_conversations("en") if conversation[0].domain in HELD_OUT_DOMAINS]
    if text_split == "unseen_lang":
        return [conversation for language in ("it", "pt", "es", "fr") for conversation in load_conversations(language)]
    raise ValueError(f"unknown text split {text_split!r}")
