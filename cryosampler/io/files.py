"""Atomic file writes: readers never see half a file, and a failed write leaves none; and the claim on an output
that keeps two runs from writing it at once."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "staged_directory", "claim_output", "check_unclaimed", "recorded_settings"]


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


def _temporaries(path: Path) -> list[Path]:
    """The temporary siblings :func:`atomic_path` and :func:`staged_directory` make for ``path``."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{32}}\.tmp")
    if not path.parent.is_dir():
        return []
    return [entry for entry in path.parent.iterdir() if pattern.fullmatch(entry.name)]


def _in_use(path: Path, holder: str) -> ValueError:
    return ValueError(f"{path} is being written by another cryosampler run (process {holder or 'unknown'}); wait for "
                      "it to end, or choose another output")


def check_unclaimed(path: str | os.PathLike) -> None:
    """ValueError, as :func:`claim_output` gives, if another run holds the claim on ``path``; nothing is written."""
    path = Path(path)
    try:
        fd = os.open(path.parent / f".{path.name}.lock", os.O_RDONLY)
    except OSError:  # no lock file (or none readable): no run holds it
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(path, os.read(fd, 32).decode(errors="replace").strip()) from None
    finally:
        os.close(fd)


@contextmanager
def claim_output(path: str | os.PathLike, covers: Iterable[str | os.PathLike] = ()) -> Iterator[list[Path]]:
    """Hold an exclusive claim on the output ``path`` (a file or a folder) for the block, so that two runs never
    write it at once: ValueError, naming the process that holds it, if another claim holds it.

    The claim is an ``fcntl.flock`` on ``.NAME.lock`` beside ``path``, which the kernel releases when the holder
    dies (``kill -9`` included), and which is removed at the end of the block; missing parent folders are made
    and, if still empty at the end, removed. Under the claim no other run writes ``path`` or ``covers`` (files
    written with it), so any temporary file or folder of theirs left from before was left by a killed run: they
    are removed, and the block is given their paths.
    """
    path = Path(path)
    made, parent = [], path.parent
    while not parent.exists() and parent != parent.parent:
        made.append(parent)
        parent = parent.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.parent / f".{path.name}.lock"
    try:
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip()
                os.close(fd)
                raise _in_use(path, holder) from None
            # The last holder removes the lock file as it ends: a lock on a removed file claims nothing, so retry.
            try:
                if os.path.samestat(os.fstat(fd), os.stat(lock)):
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            stale = [tmp for target in dict.fromkeys((path, *map(Path, covers))) for tmp in _temporaries(target)]
            for tmp in stale:
                shutil.rmtree(tmp) if tmp.is_dir() and not tmp.is_symlink() else tmp.unlink()
            yield stale
        finally:
            lock.unlink()
            os.close(fd)
    finally:
        for folder in made:  # innermost first
            try:
                folder.rmdir()
            except OSError:  # not empty: the run wrote there
                break


def recorded_settings(path: str | os.PathLike, settings: dict, what: str) -> bool:
    """Whether the JSON record ``path`` of the work in its folder holds ``settings``: True when it does, False when
    there is no record yet; a ValueError naming the folder when it holds ``what`` made with other settings, so
    that such work is refused rather than reused or overwritten."""
    path = Path(path)
    if not path.is_file():
        return False
    if json.loads(path.read_text()) != settings:
        raise ValueError(f"{path.parent} holds {what} with other settings ({path}); remove it or give another "
                         "folder")
    return True
