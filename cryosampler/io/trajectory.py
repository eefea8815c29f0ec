"""Trajectories (DCD, and any format mdtraj reads): the heavy atoms of every frame as a
:class:`~cryosampler.io.structure.Structure` and a coordinate array. The one module that talks to mdtraj."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryosampler.io.atomic_files import atomic_number
from cryosampler.io.structure import Structure

__all__ = ["Trajectory", "read_trajectory"]


@dataclass(frozen=True)
class Trajectory:
    """The heavy atoms of a trajectory's frames."""

    topology: Structure  # heavy atoms, residues and names; coordinates of frame 0
    frames: np.ndarray  # (F, N, 3) float64, Å, heavy atoms in the topology's order
    atom_names: tuple[str, ...]  # every atom of the file, hydrogens included, in file order


def read_trajectory(path: str | Path, topology: str | Path | None = None, name: str = "trajectory",
                    chain_id: str = "A") -> Trajectory:
    """Read ``path`` (a trajectory with its ``topology`` file, or a PDB file on its own) and keep its heavy atoms.

    mdtraj guesses elements from atom names when the element column is empty (CHARMM files), e.g. "HE1" → He;
    in a protein the standardised name's first letter is the element, so that is used instead, and a heavy atom
    is one whose name does not start with H.
    """
    import mdtraj  # imported here: only the transition-path experiment reads trajectories

    trajectory = mdtraj.load(str(path)) if topology is None else mdtraj.load(str(path), top=str(topology))
    top = trajectory.topology
    heavy = [a.index for a in top.atoms if a.name[0] != "H"]
    atoms = [top.atom(i) for i in heavy]
    elements = [a.name[0] for a in atoms]
    frames = np.stack([x[heavy].astype(np.float64) * 10.0 for x in trajectory.xyz])  # nm → Å
    structure = Structure(coords=frames[0], elements=elements, atomic_numbers=[atomic_number(e) for e in elements],
                          atom_names=[a.name for a in atoms], res_names=[a.residue.name for a in atoms],
                          res_nums=[a.residue.resSeq for a in atoms], chain_id=chain_id, name=name)
    return Trajectory(structure, frames, tuple(a.name for a in top.atoms))
