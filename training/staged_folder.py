"""Runs that lose nothing already written: a folder is written into ``FOLDER.partial`` and renamed into place, and
``--resume_from_checkpoint last`` finds where an interrupted run stopped."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def staged_folder(final: str) -> Iterator[str]:
    """Yields a fresh staging folder; when the block ends without an error, it replaces ``final`` in one rename.
    An interrupted write leaves ``final`` as it was (and a ``.partial`` folder that the next write clears)."""
    staging = f"{final.rstrip(os.sep)}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    yield staging
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(staging, final)


def resolve_resume(resume: str | None, output_dir: str, log=print) -> str | None:
    """``--resume_from_checkpoint last`` -> the newest ``checkpoint-N`` of ``output_dir`` (None, said, when there is
    none); any other value unchanged."""
    if resume != "last":
        return resume
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
    if last is None:
        log(f"no checkpoint in {output_dir}: starting from scratch")
    return last
