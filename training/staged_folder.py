"""Writing a folder so that nothing already there is lost: into ``FOLDER.partial``, then renamed into place."""

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
