"""Which PDB entries the experiments use, and where their coordinate files are.

A manifest (``cryosampler/experiments/manifests/<name>.csv``) lists one *slot* per paper entry with its split and
an optional *substitute*: a similar entry used when the paper's one cannot be had (e.g. offline).
:func:`resolve_manifest` maps each slot to a file on disk, searching a PDB directory (the
``CRYOSAMPLER_PDB_DIR`` environment variable by default), then a download cache, then optionally RCSB.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

import pandas as pd

from cryosampler.io.files import atomic_path

__all__ = [
    "ENV_VAR",
    "RCSB_URL",
    "describe_missing",
    "find_entry",
    "load_manifest",
    "pdb_dir_from_env",
    "require_splits",
    "resolve_manifest",
]

logger = logging.getLogger(__name__)

ENV_VAR = "CRYOSAMPLER_PDB_DIR"
RCSB_URL = "https://files.rcsb.org/download"
MANIFEST_COLUMNS = ["slot", "split", "substitute", "note"]
RESOLVED_COLUMNS = ["slot", "split", "used_id", "path", "substituted", "note"]
SPLITS = {"train", "val", "test", "test_ood"}

# Short: a missing entry must not stall a notebook for minutes.
DOWNLOAD_TIMEOUT_S = 10.0

_PDB_ID = re.compile(r"[0-9A-Za-z_]{4,12}")


def pdb_dir_from_env(pdb_dir=None) -> Path | None:
    """The PDB directory: ``pdb_dir`` if given, else ``$CRYOSAMPLER_PDB_DIR``, else None."""
    if pdb_dir is not None:
        return Path(pdb_dir).expanduser()
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser() if value else None


def _check_id(pdb_id: str) -> str:
    if not isinstance(pdb_id, str) or not _PDB_ID.fullmatch(pdb_id):
        raise ValueError(f"invalid PDB ID {pdb_id!r}: expected 4 letters/digits such as '1EXR'")
    return pdb_id


def _candidate_names(pdb_id: str) -> list[str]:
    """File names an entry may have on disk, in order of preference."""
    lower, upper = pdb_id.lower(), pdb_id.upper()
    names = [f"{i}{ext}" for ext in (".pdb", ".cif", ".pdb.gz", ".cif.gz") for i in (lower, upper)]
    return names + [f"pdb{lower}.ent", f"pdb{lower}.ent.gz"]


def _download(pdb_id: str, cache_dir: Path, base_url: str, timeout: float) -> Path | None:
    """Fetch ``{base_url}/{ID}.cif`` into ``cache_dir``; None (logged) on any network error."""
    url = f"{base_url.rstrip('/')}/{pdb_id.upper()}.cif"
    target = cache_dir / f"{pdb_id.upper()}.cif"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        logger.warning("could not download %s from %s: %s", pdb_id, url, err)
        return None
    if not data:
        logger.warning("download of %s from %s returned an empty file", pdb_id, url)
        return None
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Write atomically so an interrupted download never leaves a truncated file in the cache.
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    logger.info("downloaded %s from %s to %s", pdb_id, url, target)
    return target


def find_entry(
    pdb_id: str,
    pdb_dir,
    cache_dir=None,
    download: bool = False,
    base_url: str = RCSB_URL,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path | None:
    """Path of an entry's coordinate file, or None if it cannot be had.

    Looks for ``{id}.pdb``, ``{id}.cif`` (lower or upper case, optionally ``.gz``) and
    ``pdb{id}.ent[.gz]`` in ``pdb_dir``, then ``cache_dir``. If nothing is found and ``download`` is
    true, fetches ``{base_url}/{ID}.cif`` into ``cache_dir``; network errors are logged, not raised.

    Parameters
    ----------
    pdb_id : str
        PDB ID, any case (``"1EXR"``).
    pdb_dir, cache_dir : str or Path or None
        Directories to search; None skips one.
    timeout : float
        Download timeout (s).
    """
    _check_id(pdb_id)
    for directory in (pdb_dir, cache_dir):
        if directory is None:
            continue
        for name in _candidate_names(pdb_id):
            path = Path(directory) / name
            if path.is_file():
                return path
    if not download:
        return None
    if cache_dir is None:
        raise ValueError(f"cannot download {pdb_id}: download=True needs a cache_dir to write into")
    return _download(pdb_id, Path(cache_dir), base_url, timeout)


def load_manifest(name: str = "paper") -> pd.DataFrame:
    """The packaged manifest ``cryosampler/experiments/manifests/{name}.csv``.

    Returns
    -------
    DataFrame
        Columns ``slot, split, substitute, note``; ``substitute`` is ``""`` where there is none.
    """
    folder = resources.files("cryosampler.experiments") / "manifests"
    source = folder / f"{name}.csv"
    if not source.is_file():
        available = sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".csv"))
        raise ValueError(f"unknown manifest {name!r}; available: {available}")
    with source.open() as handle:
        frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
    if list(frame.columns) != MANIFEST_COLUMNS:
        raise ValueError(f"manifest {name!r}: columns must be {MANIFEST_COLUMNS}, got {list(frame.columns)}")
    for row in frame.itertuples():
        _check_id(row.slot)
        if row.substitute:
            _check_id(row.substitute)
        if row.split not in SPLITS:
            raise ValueError(
                f"manifest {name!r}: slot {row.slot} has unknown split {row.split!r}; use {sorted(SPLITS)}"
            )
    if frame["slot"].duplicated().any():
        raise ValueError(f"manifest {name!r}: duplicate slots {list(frame['slot'][frame['slot'].duplicated()])}")
    return frame


def _configure_hint() -> str:
    return (
        f"set the environment variable {ENV_VAR} to a directory holding {{id}}.pdb or {{id}}.cif files "
        "(or pass pdb_dir=...), or run online with download=True and a cache_dir"
    )


def resolve_manifest(
    name: str = "paper",
    pdb_dir=None,
    cache_dir=None,
    download: bool = False,
    base_url: str = RCSB_URL,
) -> pd.DataFrame:
    """Map every manifest slot to a coordinate file: the paper's entry if found, else its substitute.

    Parameters
    ----------
    name : str
        Packaged manifest name (see :func:`load_manifest`).
    pdb_dir : str or Path, optional
        Directory of PDB/mmCIF files; default ``$CRYOSAMPLER_PDB_DIR``.
    cache_dir : str or Path, optional
        Download cache, searched after ``pdb_dir``; written to when ``download`` is true.
    download : bool
        Fetch entries found nowhere from ``base_url`` (RCSB by default).

    Returns
    -------
    DataFrame
        One row per resolved slot, columns ``slot, split, used_id, path, substituted, note``
        (``path`` is a str). Slots for which neither entry nor substitute was found are left out and
        listed in ``frame.attrs["missing"]``: dicts with keys ``slot, split, tried, searched`` (IDs
        tried, directories searched). Pass the frame to :func:`describe_missing` for a message, and to
        :func:`require_splits` to stop when a split the caller needs has no protein.
        ``frame.attrs["download"]`` records whether downloading was tried.

    Raises
    ------
    ValueError
        If ``pdb_dir`` is given (or set in the environment) but is not a directory, or if no
        directory is configured at all and nothing was found.
    """
    pdb_dir = pdb_dir_from_env(pdb_dir)
    if pdb_dir is not None and not pdb_dir.is_dir():
        problem = "is a file, not a directory" if pdb_dir.exists() else "does not exist"
        raise ValueError(f"PDB directory {pdb_dir} {problem}; {_configure_hint()}")
    searched = [str(d) for d in (pdb_dir, cache_dir) if d is not None]

    rows, missing = [], []
    for row in load_manifest(name).itertuples():
        candidates = [row.slot] + ([row.substitute] if row.substitute else [])
        for pdb_id in candidates:
            path = find_entry(pdb_id, pdb_dir, cache_dir, download=download, base_url=base_url)
            if path is not None:
                rows.append(dict(slot=row.slot, split=row.split, used_id=pdb_id, path=str(path),
                                 substituted=pdb_id != row.slot, note=row.note))
                break
        else:
            missing.append(dict(slot=row.slot, split=row.split, tried=candidates, searched=searched))
            logger.warning("manifest %s: slot %s not found (tried %s in %s)", name, row.slot, candidates, searched)

    if pdb_dir is None and not rows:
        raise ValueError(f"no PDB directory configured and no entry of manifest {name!r} found; {_configure_hint()}")
    frame = pd.DataFrame(rows, columns=RESOLVED_COLUMNS).astype({"substituted": bool})
    frame.attrs["missing"] = missing
    frame.attrs["download"] = download
    return frame


def require_splits(resolved: pd.DataFrame, splits=("train", "val")) -> None:
    """Raise ValueError unless :func:`resolve_manifest` found a protein for each of ``splits``.

    The one-line message names the missing entries, the directories searched and how to supply them
    (``download = True`` fetches them from RCSB when online).
    """
    lacking = [split for split in splits if not (resolved["split"] == split).any()]
    if not lacking:
        return
    missing = resolved.attrs.get("missing", [])
    entries = ", ".join(f"{' or '.join(m['tried'])} ({m['split']})" for m in missing)
    searched = list(dict.fromkeys(d for m in missing for d in m["searched"]))
    where = " and ".join(searched) if searched else "no directory"
    if resolved.attrs.get("download"):
        fetch = "downloading them failed (offline? see the warnings above)"
    else:
        fetch = "download = True fetches them from RCSB when online"
    raise ValueError(
        f"no {' or '.join(lacking)} protein found: missing {entries or 'nothing (the manifest has no such slot)'}; "
        f"looked in {where}; place {{id}}.pdb or {{id}}.cif files there or point {ENV_VAR} (or pdb_dir) at a "
        f"directory holding them; {fetch}")


def describe_missing(resolved: pd.DataFrame) -> str:
    """Human-readable report of the slots :func:`resolve_manifest` could not resolve ("" if none)."""
    lines = []
    for item in resolved.attrs.get("missing", []):
        where = ", ".join(item["searched"]) or "no directory"
        ids = " or ".join(item["tried"])
        files = ", ".join(f"{i.lower()}.pdb/.cif" for i in item["tried"])
        lines.append(
            f"{item['slot']} ({item['split']}): {ids} not found in {where}. To supply it, place {files} "
            f"in that directory, or point {ENV_VAR} at a directory holding it, "
            "or run online with download=True and a cache_dir."
        )
    return "\n".join(lines)
