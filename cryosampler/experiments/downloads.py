"""Data that CryoSampler fetches from PyPI packages once, into a cache folder the user can set.

Benchmark data ship inside PyPI packages (``bioemu-benchmarks``, ``MDAnalysisTests``) whose dependency pins clash
with this project's, or that are too large to depend on; they are downloaded with ``pip download --no-deps``
and read as archives, never installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryosampler.experiments.profiles import repo_root

__all__ = ["DATA_DIR_ENV", "data_dir", "pip_download"]

DATA_DIR_ENV = "CRYOSAMPLER_DATA_DIR"


def data_dir() -> Path:
    """Cache folder for downloaded data: ``$CRYOSAMPLER_DATA_DIR``, else ``results/downloads`` of the repository
    (git-ignored)."""
    return Path(os.environ.get(DATA_DIR_ENV, repo_root() / "results" / "downloads"))


def pip_download(requirement: str, filename: str, cache: str | Path, download: bool = True) -> Path:
    """Path of the distribution file ``filename`` (wheel or sdist) of ``requirement`` in ``cache``, downloaded
    there with ``pip download --no-deps`` on first use (``download=False``: only look).

    Raises ValueError, naming the cache and the pip command to run, when the file is not there and cannot be
    downloaded (offline, no pip, no such version).
    """
    cache = Path(cache)
    target = cache / filename
    if target.is_file():
        return target
    command = [sys.executable, "-m", "pip", "download", "--no-deps", requirement, "-d", str(cache)]
    shown = " ".join(["python", *command[1:]])
    if not download:
        raise ValueError(f"{target} not found; download it with: {shown}")
    try:
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(command, capture_output=True, text=True)
    except OSError as err:
        raise ValueError(f"cannot download {requirement} into {cache} ({err}); run: {shown}") from None
    if done.returncode != 0 or not target.is_file():
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ValueError(f"cannot download {requirement} into {cache} (pip: {last.strip()}); connect to "
                         f"PyPI or copy {filename} there, then rerun, or run: {shown}")
    return target
