"""Data that CryoSampler fetches from PyPI packages once, into a cache folder the user can set.

Benchmark data ship inside PyPI packages (``bioemu-benchmarks``, ``MDAnalysisTests``) whose dependency pins clash
with this project's, or that are too large to depend on; they are downloaded with ``pip download --no-deps``
and read as archives, never installed. Every downloaded and every cached file has a pinned SHA-256: a damaged
cache is fetched again once, and what is still wrong then is an error, never taken for being offline.

Two kinds of failure, both ValueError with a one-line message: :class:`DownloadUnavailable`, the data are not
here and cannot be fetched now (no network, PyPI out of reach, or ``download=False``), which callers that can do
without the data (the tests) may skip on; and any other ValueError, a damaged or wrong file, which they must not.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

from cryosampler.experiments.profiles import repo_root

__all__ = ["DATA_DIR_ENV", "DownloadUnavailable", "data_dir", "file_sha256", "damaged_files", "pip_download"]

DATA_DIR_ENV = "CRYOSAMPLER_DATA_DIR"

# What pip says when it cannot reach an index: it found no version at all of a package that has some, or a
# connection failed (no network, DNS, proxy, TLS, time-out, a download cut off).
_OFFLINE = re.compile(r"\(from versions: none\)|NewConnectionError|ConnectTimeout|ReadTimeout|timed out|"
                      r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
                      r"ProxyError|SSLError|Max retries exceeded|Could not fetch URL|Connection broken|"
                      r"IncompleteRead|Connection refused|Connection reset")


class DownloadUnavailable(ValueError):
    """The data are not in the cache and cannot be fetched now: offline, PyPI out of reach, or ``download=False``.

    The only download failure that may be passed over (the tests skip on it); a damaged cache, a wrong file or an
    archive without the expected files is a plain ValueError.
    """


def data_dir() -> Path:
    """Cache folder for downloaded data: ``$CRYOSAMPLER_DATA_DIR``, else ``results/downloads`` of the repository
    (git-ignored)."""
    return Path(os.environ.get(DATA_DIR_ENV, repo_root() / "results" / "downloads"))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def damaged_files(paths: dict[str, Path], sha256: dict[str, str]) -> list[Path]:
    """The files of ``paths`` ({name: path}) that exist but whose SHA-256 is not ``sha256[name]``."""
    return [path for name, path in paths.items() if path.is_file() and file_sha256(path) != sha256[name]]


def pip_download(requirement: str, filename: str, cache: str | Path, download: bool = True, *, sha256: str) -> Path:
    """Path of the distribution file ``filename`` (wheel or sdist) of ``requirement`` in ``cache``, downloaded
    there with ``pip download --no-deps`` on first use (``download=False``: only look), its SHA-256 ``sha256``.

    A cached file with another SHA-256 (cut short, damaged, another build) is deleted and downloaded again, once.
    Raises :class:`DownloadUnavailable`, naming the cache and the pip command to run, when the file is not there
    and cannot be downloaded (``download=False``, or pip cannot reach PyPI); ValueError when pip fails otherwise
    (no pip, no such version), when the download too has the wrong SHA-256, or, with ``download=False``, when
    the cached file has.
    """
    cache = Path(cache)
    target = cache / filename
    command = [sys.executable, "-m", "pip", "download", "--no-deps", requirement, "-d", str(cache)]
    shown = " ".join(["python", *command[1:]])
    wrong = f"{target}: SHA-256 is not that of {requirement} ({sha256})"
    if target.is_file():
        if file_sha256(target) == sha256:
            return target
        if not download:
            raise ValueError(f"{wrong}; delete it and run again")
        target.unlink()  # damaged: fetched again below
    elif not download:
        raise DownloadUnavailable(f"{target} not found; download it with: {shown}")
    try:
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(command, capture_output=True, text=True)
    except OSError as err:
        raise ValueError(f"cannot download {requirement} into {cache} ({err}); run: {shown}") from None
    if done.returncode != 0 or not target.is_file():
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        error = DownloadUnavailable if _OFFLINE.search(done.stderr) else ValueError
        raise error(f"cannot download {requirement} into {cache} (pip: {last.strip()}); connect to "
                    f"PyPI or copy {filename} there, then rerun, or run: {shown}")
    if file_sha256(target) != sha256:
        raise ValueError(f"{wrong} even when downloaded again; check the index pip uses (pip config list)")
    return target
