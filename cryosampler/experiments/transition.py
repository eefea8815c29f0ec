"""A real all-atom transition path: adenylate kinase closed → open (DIMS), for continuous ensembles of maps.

The PyPI package ``MDAnalysisTests`` (2.11.0; GPL-2.0-or-later, its ``LICENSE`` is cached with the data) ships
``adk_dims.dcd`` (98 frames of a DIMS path from closed 1AKE to open 4AKE, 3,341 atoms with hydrogens, CHARMM
naming, frames centred), ``adk_closed.pdb`` (1AKE, the trajectory's topology) and ``adk_open.pdb`` (4AKE). The
package is a 60 MB source archive, so it is not a dependency: :func:`adk_files` downloads it once with
``pip download`` into the cache folder, takes those four files out and deletes the archive.

Frames are read with mdtraj (which maps CHARMM names to PDB ones: HSD → HIS, OT1 → O); hydrogens are dropped,
and every frame is superposed on the first by the CA atoms of the CORE domain (residues 1–29, 60–121, 160–214;
Beckstein et al., J. Mol. Biol. 394, 160, 2009), as a consensus refinement would align particles on the rigid
part, so the LID and NMP domains move in the maps' frame.
"""

from __future__ import annotations

import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryosampler.experiments.downloads import damaged_files, data_dir, pip_download
from cryosampler.io.files import atomic_path
from cryosampler.io.structure import Structure
from cryosampler.io.trajectory import read_trajectory
from cryosampler.physics.superpose import optimal_rotation

__all__ = ["REQUIREMENT", "SDIST_NAME", "SDIST_SHA256", "FILES", "FILE_SHA256", "CORE_RESIDUES", "TransitionPath",
           "adk_files", "read_adk_path"]

REQUIREMENT = "MDAnalysisTests==2.11.0"
SDIST_NAME = "mdanalysistests-2.11.0.tar.gz"
SDIST_SHA256 = "5edeb5b01805da728b202103aa8d2b5974a37f1005ab1fe0150ed7d59702d2ea"
_MEMBERS = {"adk_dims.dcd": "MDAnalysisTests/data/adk_dims.dcd",
            "adk_closed.pdb": "MDAnalysisTests/data/adk_closed.pdb",
            "adk_open.pdb": "MDAnalysisTests/data/adk_open.pdb",
            "LICENSE": "LICENSE"}
FILES = tuple(_MEMBERS)
# The cached files are checked against these on every call: a damaged one is taken out of the archive again.
FILE_SHA256 = {"adk_dims.dcd": "859a5bd9e7de45a0f2401f7971c5ffc296168e7c23f6f65382bde7c1686c19f1",
               "adk_closed.pdb": "e5f4b595e93662f2915630a54769d65ca92566cf7c5cd66646e22a6139aa01fd",
               "adk_open.pdb": "d988a6845a7489f8641ce8918471e4b2a19e94f46490571bb33522041fc48f9a",
               "LICENSE": "7614dd55e5b9851e0a2d197abc0e319dd10034f5a729aa7e698193aa7a8779e9"}
CORE_RESIDUES = (*range(1, 30), *range(60, 122), *range(160, 215))


def adk_files(cache: str | Path | None = None, download: bool = True) -> dict[str, Path]:
    """The four cached files, {name: path}, in ``cache/adk_dims`` (default cache
    :func:`~cryosampler.experiments.downloads.data_dir`), fetched on first use (``download=False``: only look).

    A cached file whose SHA-256 is not :data:`FILE_SHA256`'s is taken out of a fresh download again, once.
    :class:`~cryosampler.experiments.downloads.DownloadUnavailable` naming the cache and the pip command when
    they are missing and cannot be downloaded (offline); ValueError when the archive is damaged or lacks one of
    them, when a file is still wrong after the new download, or, with ``download=False``, when one is damaged.
    """
    folder = (data_dir() if cache is None else Path(cache)) / "adk_dims"
    paths = {name: folder / name for name in FILES}
    damaged = damaged_files(paths, FILE_SHA256)
    if not damaged and all(p.is_file() for p in paths.values()):
        return paths
    if damaged and not download:
        raise ValueError(f"{damaged[0]}: SHA-256 is not that of {REQUIREMENT}'s file; delete {folder} and run again")
    sdist = pip_download(REQUIREMENT, SDIST_NAME, folder, download, sha256=SDIST_SHA256)
    root = SDIST_NAME.removesuffix(".tar.gz")
    try:
        with tarfile.open(sdist) as archive:
            for name, member in _MEMBERS.items():
                source = archive.extractfile(f"{root}/{member}")
                if source is None:  # a link or folder where the file should be
                    raise tarfile.TarError(f"{member} is not a file")
                with atomic_path(paths[name]) as tmp, open(tmp, "wb") as out:  # no half file on failure
                    shutil.copyfileobj(source, out)
    except (KeyError, tarfile.TarError, OSError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(":")
        raise ValueError(f"{sdist}: cannot take the adenylate kinase files from {REQUIREMENT}'s archive "
                         f"({reason}); delete {folder} and run again") from None
    damaged = damaged_files(paths, FILE_SHA256)
    if damaged:
        raise ValueError(f"{damaged[0]}: SHA-256 is not that of {REQUIREMENT}'s file even when taken out of "
                         f"{sdist} again; delete {folder} and run again")
    sdist.unlink()  # the four files are all that is used
    return paths


@dataclass(frozen=True)
class TransitionPath:
    """Heavy atoms of a protein along a path, all frames in one frame of reference."""

    frames: np.ndarray  # (F, N, 3) float64, Å; frame 0 is the start (closed), frame F-1 the end (open)
    topology: Structure  # atoms, residues and names of every frame, coordinates of frame 0
    closed: np.ndarray  # (N, 3) float64, Å: the crystal structure of the start (1AKE), superposed on frame 0
    opened: np.ndarray  # (N, 3) float64, Å: the crystal structure of the end (4AKE), superposed on frame 0


def read_adk_path(files: dict[str, Path]) -> TransitionPath:
    """The DIMS path of :func:`adk_files` as a :class:`TransitionPath`: 98 frames of 1,656 heavy atoms, every
    frame and both crystal structures superposed on frame 0 by the CORE domain's CA atoms."""
    path = read_trajectory(files["adk_dims.dcd"], topology=files["adk_closed.pdb"], name="adk")
    crystals = [read_trajectory(files[name]) for name in ("adk_closed.pdb", "adk_open.pdb")]
    topology, first = path.topology, path.frames[0]
    if crystals[1].atom_names != path.atom_names:  # adk_closed.pdb is the topology itself
        raise ValueError(f"{files['adk_open.pdb']}: atoms differ from {files['adk_closed.pdb']}; delete the cache "
                         "and download again")
    core_ca = np.array([k for k, (atom, number) in enumerate(zip(topology.atom_names, topology.res_nums))
                        if atom == "CA" and number in CORE_RESIDUES])

    def onto_first(coords: np.ndarray) -> np.ndarray:
        rotation = optimal_rotation(coords[core_ca], first[core_ca])
        return (coords - coords[core_ca].mean(0)) @ rotation.T + first[core_ca].mean(0)

    frames = np.stack([onto_first(x) for x in path.frames])
    closed, opened = (onto_first(c.frames[0]) for c in crystals)
    return TransitionPath(frames, topology, closed, opened)
