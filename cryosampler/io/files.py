"""Atomic file writes: readers never see half a file, and a failed write leaves none."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "staged_directory"]


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


@contextmanager
def staged_directory(path: str | os.PathLike, replace: str) -> Iterator[Path]:
    """Yield a temporary sibling directory of ``path`` to fill with new files.

    If the block succeeds, the files in ``path`` matching the glob ``replace`` are deleted and the new files
    moved in (a missing ``path`` is created by renaming the temporary directory), so ``path`` never mixes
    outputs of two runs; if it fails, the temporary directory is removed and ``path`` is left untouched.
    Each move is atomic; the set of moves is not.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {path.parent} does not exist")
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir()
    try:
        yield tmp
        if path.is_dir():
            for old in path.glob(replace):
                old.unlink()
            for new in sorted(tmp.iterdir()):
                os.replace(new, path / new.name)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
