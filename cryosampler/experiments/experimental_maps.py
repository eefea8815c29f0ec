"""Real EMDB maps with their deposited models, taken from a PyPI package's test data.

The only place this project's machines reach is PyPI, and the one package found there that ships real EMDB maps
with the models deposited for them is ``ccpem-utils`` (CCP-EM's Python utilities). Its wheel 0.0.1.dev34
(4.7 MB; later versions add a 55 MB map that is not used) holds, in ``ccpem_utils_tests/test_data``:

* ``emd_3488.mrc``: EMD-3488, human haemoglobin at 3.2 Å (Volta phase plate; Khoshouei et al., Nat. Commun. 8,
  16099, 2017), 100³ voxels of 1.05 Å, and ``5me2.pdb``, its deposited model PDB 5ME2 (four chains, α₂β₂). The
  map holds the whole tetramer; it is read twice, with chain A (α, 141 residues) as the reference, the three
  other chains then density it does not explain, and with all four chains (``--chain all``).
* ``emd_21457_seg.mrc``: a 48 × 40 × 47 box (1.05 Å voxels) cut by the package's authors out of EMD-21457, the
  SARS-CoV-2 spike ectodomain, open state, at 3.2 Å (Walls et al., Cell 181, 281, 2020), around the N-terminal
  domain of chain A; its origin in the header ORIGIN. ``6vyb_Ndom.pdb`` is that domain of the deposited model
  PDB 6VYB (chain A, residues 27–293, with its glycans). The same box is shipped twice more, with the origin
  in N?START (``_nstart``) and with the origin lost (``_orig0``), which a user's map can also be.

Licences: EMDB entries and PDB entries are public domain (CC0). ccpem-utils declares no licence (its
``LICENSE`` file is empty, and no classifier names one), so its files are never copied into this repository:
:func:`experimental_map_files` downloads the wheel once into the cache folder, checks its SHA-256, takes the
six files out and deletes the wheel.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cryosampler.experiments.downloads import damaged_files, data_dir, pip_download
from cryosampler.io.files import atomic_path

__all__ = ["REQUIREMENT", "WHEEL_NAME", "WHEEL_SHA256", "FILES", "FILE_SHA256", "ExperimentalMap",
           "EXPERIMENTAL_MAPS", "experimental_map_files"]

REQUIREMENT = "ccpem-utils==0.0.1.dev34"
WHEEL_NAME = "ccpem_utils-0.0.1.dev34-py3-none-any.whl"
WHEEL_SHA256 = "794731edd86b3038235db0b4dee1c71a857d675d1548056d38c11388b46adc90"
_FOLDER = "ccpem_utils_tests/test_data"
FILES = ("emd_3488.mrc", "5me2.pdb", "emd_21457_seg.mrc", "emd_21457_seg_nstart.mrc", "emd_21457_seg_orig0.mrc",
         "6vyb_Ndom.pdb")
# The cached files are checked against these on every call: a damaged one is taken out of the wheel again.
FILE_SHA256 = {"emd_3488.mrc": "2fdf1909cbfbc21d3af4230e8a8ff57bf4d4b6ccc72b480992df4dfe39e30209",
               "5me2.pdb": "03f02baa67021db02426f511dcfdbc34e8c30bb5f7560cbc320caa9c4ef42a5b",
               "emd_21457_seg.mrc": "4b5513e98bc8c4c0ce3cb7b2b127955b90278aaa3c68ddfa97ba57861172cf27",
               "emd_21457_seg_nstart.mrc": "28319876bad242746d0e6e754de2ead03b7f59ac940f89a34f617379f2b5c10e",
               "emd_21457_seg_orig0.mrc": "5d357153bae8ca514f75b2b6dcd19e4f4f87ff06b13839478f41eec782d2ac2a",
               "6vyb_Ndom.pdb": "b925807400c86d6c9b67a2f48d15314035fc6381cbfc6a2baf41b0b9b89ea77c"}


@dataclass(frozen=True)
class ExperimentalMap:
    """One map of :data:`EXPERIMENTAL_MAPS` and the deposited model fitted into it."""

    name: str  # short name, used for output folders
    map_file: str  # a name in FILES
    model_file: str  # a name in FILES
    chain: str  # the chain of the model used as the reference
    emdb: str  # EMDB entry the map comes from
    pdb: str  # PDB entry of the deposited model
    resolution: float  # Å, the entry's reported resolution
    note: str  # what is special about this file


EXPERIMENTAL_MAPS = (
    ExperimentalMap("haemoglobin", "emd_3488.mrc", "5me2.pdb", "A", "EMD-3488", "5ME2", 3.2,
                    "whole α₂β₂ tetramer in the map; chain A is the reference"),
    ExperimentalMap("haemoglobin_all", "emd_3488.mrc", "5me2.pdb", "all", "EMD-3488", "5ME2", 3.2,
                    "the same map with all four chains as the reference (--chain all)"),
    ExperimentalMap("spike_ntd", "emd_21457_seg.mrc", "6vyb_Ndom.pdb", "A", "EMD-21457", "6VYB", 3.2,
                    "box cut around the N-terminal domain; origin in ORIGIN"),
    ExperimentalMap("spike_ntd_nstart", "emd_21457_seg_nstart.mrc", "6vyb_Ndom.pdb", "A", "EMD-21457", "6VYB", 3.2,
                    "the same box with its origin in N?START"),
    ExperimentalMap("spike_ntd_orig0", "emd_21457_seg_orig0.mrc", "6vyb_Ndom.pdb", "A", "EMD-21457", "6VYB", 3.2,
                    "the same box with its origin lost (0): the model is not in it"),
)


def experimental_map_files(cache: str | Path | None = None, download: bool = True) -> dict[str, Path]:
    """The six cached files of :data:`FILES`, {name: path}, in ``cache/experimental_maps`` (default cache
    :func:`~cryosampler.experiments.downloads.data_dir`), fetched on first use (``download=False``: only look).

    A cached wheel whose SHA-256 is not :data:`WHEEL_SHA256`, or a cached file whose SHA-256 is not
    :data:`FILE_SHA256`'s, is downloaded or taken out of the wheel again, once.
    :class:`~cryosampler.experiments.downloads.DownloadUnavailable` naming the cache and the pip command when
    they are missing and cannot be downloaded (offline); ValueError naming the wheel when it lacks one of the
    files or is still wrong after the new download, naming a file that is, or, with ``download=False``, naming
    what is damaged.
    """
    folder = (data_dir() if cache is None else Path(cache)) / "experimental_maps"
    paths = {name: folder / name for name in FILES}
    damaged = damaged_files(paths, FILE_SHA256)
    if not damaged and all(p.is_file() for p in paths.values()):
        return paths
    if damaged and not download:
        raise ValueError(f"{damaged[0]}: SHA-256 is not that of {REQUIREMENT}'s file; delete {folder} and run again")
    wheel = pip_download(REQUIREMENT, WHEEL_NAME, folder, download, sha256=WHEEL_SHA256)
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name in FILES:
                with archive.open(f"{_FOLDER}/{name}") as source, atomic_path(paths[name]) as tmp, \
                        open(tmp, "wb") as out:  # no half file on failure
                    shutil.copyfileobj(source, out)
    except (KeyError, zipfile.BadZipFile, OSError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(":")
        raise ValueError(f"{wheel}: cannot take the experimental maps from {REQUIREMENT}'s wheel ({reason}); "
                         f"delete {folder} and run again") from None
    damaged = damaged_files(paths, FILE_SHA256)
    if damaged:
        raise ValueError(f"{damaged[0]}: SHA-256 is not that of {REQUIREMENT}'s file even when taken out of "
                         f"{wheel} again; delete {folder} and run again")
    wheel.unlink()  # the six files are all that is used
    return paths
