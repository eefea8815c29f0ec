"""Atomic file writes: readers never see half a file, and a failed write leaves none."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; it is renamed onto ``path`` if the block succeeds
    and removed if it fails (an existing file at ``path`` is then left untouched).

    The name is unique and on the same filesystem, so the rename is atomic; not ``mkstemp``, whose 0600
    mode would stick to the result.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {path.parent} does not exist")
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
