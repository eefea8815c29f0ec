"""Trajectories: reading any format mdtraj reads (DCD, XTC, ...) as the heavy atoms of every frame, a
:class:`~cryosampler.io.structure.Structure` and a coordinate array; writing ensembles as GROMACS XTC for MD tools;
and mdtraj's DSSP, the secondary structure of a structure. The one module that talks to mdtraj."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryosampler.io.atomic_files import atomic_number
from cryosampler.io.files import atomic_path
from cryosampler.io.structure import Structure, check_same_atoms

__all__ = ["Trajectory", "read_trajectory", "read_xtc_ensemble", "XtcWriter", "XTC_PRECISION", "secondary_structure"]

# Å. XTC stores coordinates as integers of 1/1000 nm (GROMACS' default precision, mdtraj's only one).
XTC_PRECISION = 0.01


@dataclass(frozen=True)
class Trajectory:
    """The heavy atoms of a trajectory's frames."""

    topology: Structure  # heavy atoms, residues and names; coordinates of frame 0
    frames: np.ndarray  # (F, N, 3) float64, Å, heavy atoms in the topology's order
    atom_names: tuple[str, ...]  # every atom of the file, hydrogens included, in file order


def _heavy_frames(path, topology) -> tuple:
    """mdtraj's topology of ``path`` (with its ``topology`` file, if any), the indices of its heavy atoms (names not
    starting with H), and their coordinates in every frame (F, N, 3) float64, Å."""
    import mdtraj  # imported here: only the transition path, XTC ensembles and `cryosampler report` need it

    trajectory = mdtraj.load(str(path)) if topology is None else mdtraj.load(str(path), top=str(topology))
    heavy = [a.index for a in trajectory.topology.atoms if a.name[0] != "H"]
    frames = np.stack([x[heavy].astype(np.float64) * 10.0 for x in trajectory.xyz])  # nm → Å
    return trajectory.topology, heavy, frames


def read_trajectory(path: str | Path, topology: str | Path | None = None, name: str = "trajectory",
                    chain_id: str = "A") -> Trajectory:
    """Read ``path`` (a trajectory with its ``topology`` file, or a PDB file on its own) and keep its heavy atoms.

    mdtraj guesses elements from atom names when the element column is empty (CHARMM files), e.g. "HE1" → He;
    in a protein the standardised name's first letter is the element, so that is used instead, and a heavy atom
    is one whose name does not start with H.
    """
    top, heavy, frames = _heavy_frames(path, topology)
    atoms = [top.atom(i) for i in heavy]
    elements = [a.name[0] for a in atoms]
    structure = Structure(coords=frames[0], elements=elements, atomic_numbers=[atomic_number(e) for e in elements],
                          atom_names=[a.name for a in atoms], res_names=[a.residue.name for a in atoms],
                          res_nums=[a.residue.resSeq for a in atoms], chain_id=chain_id, name=name)
    return Trajectory(structure, frames, tuple(a.name for a in top.atoms))


def read_xtc_ensemble(path: str | Path, topology: str | Path, reference: Structure) -> np.ndarray:
    """The frames of an XTC ensemble (``cryosampler sample --format xtc``) with its ``topology`` PDB file, as
    :func:`~cryosampler.io.atomic_files.read_ensemble` reads a multi-model file: (F, N, 3) float64, Å, in the atom
    order of ``reference``; ValueError naming the file and the first differing atom if the topology's heavy atoms
    are not the reference's, the file is not XTC or the topology holds another number of atoms.

    The topology's atoms are read as any reference is (its chains, author numbers and insertion codes, which
    mdtraj's residue numbers lose), the coordinates by mdtraj.
    """
    from cryosampler.io.atomic_files import read_structure

    top = read_structure(topology, chain=reference.chain_id)
    check_same_atoms(top.res_nums, top.res_names, top.atom_names, reference, f"{path} (topology {topology})")
    try:
        _, heavy, frames = _heavy_frames(path, topology)
    except (OSError, ValueError) as err:  # mdtraj's messages for a damaged file or a topology of other atoms
        raise ValueError(f"{path}: cannot read it as an XTC trajectory of the atoms of {topology} "
                         f"({' '.join(str(err).split())})") from None
    if len(heavy) != reference.n_atoms:
        raise ValueError(f"{path}: {len(heavy)} heavy atoms in {topology}, the reference has {reference.n_atoms}")
    return frames


def secondary_structure(structure: Structure) -> np.ndarray:
    """DSSP's secondary structure (Kabsch & Sander 1983, as mdtraj implements it; the simplified three classes) of
    each amino-acid residue of ``structure``, from its backbone: (L_aa,) str, "H" helix (α, 3₁₀, π), "E" strand
    (ladder or isolated bridge), "C" coil; rows as ``structure.backbone_res_nums``."""
    import mdtraj

    top = mdtraj.Topology()
    chain = top.add_chain()
    for start, stop in zip(structure.residue_starts[:-1], structure.residue_starts[1:]):
        residue = top.add_residue(str(structure.res_names[start]), chain, resSeq=int(structure.res_nums[start]))
        for i in range(start, stop):
            top.add_atom(str(structure.atom_names[i]), mdtraj.element.get_by_symbol(str(structure.elements[i])),
                         residue)
    codes = mdtraj.compute_dssp(mdtraj.Trajectory(structure.coords[None] / 10.0, top), simplified=True)[0]  # Å → nm
    # Caps have no CA and get "NA"; every other residue of a Structure has N, CA, C and O.
    codes = codes[np.isin(structure.res_nums[structure.residue_starts[:-1]], structure.backbone_res_nums)]
    assert len(codes) == len(structure.backbone_res_nums) and "NA" not in set(codes), codes
    return codes.astype(str)


class XtcWriter:
    """Write conformations of one atom set to a GROMACS XTC trajectory batch by batch, through mdtraj.

    As :class:`~cryosampler.io.atomic_files.EnsembleWriter`: only the batch being written is held, and the file is
    written under a temporary name beside ``path`` and renamed onto it when the ``with`` block ends without error
    (on error it is removed and an existing ``path`` is left untouched)::

        with XtcWriter(path, n_atoms) as out:
            for coords in batches:  # (M, N, 3) Å
                out.write(coords)

    XTC holds no atoms' names: read it with a topology file of the same atoms in the same order (a PDB file of
    the reference). Frame k has time k ps and step k; the box is zero, which XTC readers take for no periodic box.
    Coordinates are rounded to :data:`XTC_PRECISION`.
    """

    def __init__(self, path, n_atoms: int):
        self.path, self.n_atoms, self.n_frames = Path(path), n_atoms, 0

    def __enter__(self) -> XtcWriter:
        from mdtraj.formats import XTCTrajectoryFile

        with ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path))
            self._file = stack.enter_context(XTCTrajectoryFile(str(tmp), "w"))
            self._stack = stack.pop_all()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return self._stack.__exit__(exc_type, exc, tb)

    def write(self, coords) -> None:
        """Append frames: coords (M, N, 3) or (N, 3) float, Å."""
        coords = np.asarray(coords, dtype=np.float64)
        coords = coords[None] if coords.ndim == 2 else coords
        if coords.ndim != 3 or coords.shape[1:] != (self.n_atoms, 3):
            raise ValueError(f"{self.path}: frames must have shape (M, {self.n_atoms}, 3), got {coords.shape}")
        if not np.all(np.isfinite(coords)):
            raise ValueError(f"{self.path}: coordinates contain NaN or inf")
        frames = np.arange(self.n_frames, self.n_frames + len(coords))
        self._file.write((coords / 10.0).astype(np.float32), time=frames.astype(np.float32),  # Å → nm
                         step=frames.astype(np.int32), box=np.zeros((len(coords), 3, 3), dtype=np.float32))
        self.n_frames += len(coords)
