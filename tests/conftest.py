"""Shared fixtures: the calmodulin PDB directory (never copied into the repo) and a tiny synthetic protein."""

import os
from pathlib import Path

import numpy as np
import pytest

from cryosampler.structure import Structure

PDB_DIR = Path(os.environ.get("CRYOSAMPLER_PDB_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "pdb"))


@pytest.fixture
def shared_pdb():
    """shared_pdb("4cln.pdb") → path in the PDB directory, or skip naming the variable to set."""

    def find(name: str) -> Path:
        path = PDB_DIR / name
        if not path.is_file():
            pytest.skip(f"{path} not found: set CRYOSAMPLER_PDB_DIR to the calmodulin PDB directory")
        return path

    return find


def make_helix(n_residues: int = 8, name: str = "tiny") -> Structure:
    """A poly-alanine α-helix-like chain (N, CA, C, O, CB per residue), centred, ~1.5 Å rise per residue."""
    offsets = {"N": (1.5, -0.8, -0.6), "CA": (2.3, 0.0, 0.0), "C": (1.6, 0.9, 0.9), "O": (2.0, 1.9, 1.4),
               "CB": (3.6, -0.5, 0.3)}
    coords, names, res_nums = [], [], []
    for r in range(n_residues):
        angle = np.deg2rad(100.0 * r)
        rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
        for atom, xyz in offsets.items():
            coords.append(rot @ np.array(xyz) + [0, 0, 1.5 * r])
            names.append(atom)
            res_nums.append(r + 1)
    coords = np.array(coords)
    elements = np.array([n[0] for n in names])
    return Structure(
        coords=coords - coords.mean(0), elements=elements,
        atomic_numbers=np.array([{"C": 6, "N": 7, "O": 8}[e] for e in elements], dtype=np.int64),
        atom_names=np.array(names), res_names=np.array(["ALA"] * len(names)),
        res_nums=np.array(res_nums, dtype=np.int64), chain_id="A", name=name)


@pytest.fixture
def tiny_structure() -> Structure:
    return make_helix()


@pytest.fixture
def pdb_dir() -> Path:
    """The calmodulin PDB directory, or skip naming the variable to set."""
    if not (PDB_DIR / "1exr.pdb").is_file():
        pytest.skip(f"{PDB_DIR} lacks the calmodulin files: set CRYOSAMPLER_PDB_DIR to that directory")
    return PDB_DIR
