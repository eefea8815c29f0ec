"""Restrained relaxation (physics/relax.py): a planted clash goes and the rest stays in place; models Amber14
cannot parameterise are refused in one line; without OpenMM the message says how to install it. Tests that
relax need OpenMM (the [relax] extra) and are skipped without it."""

import random
import re
import sys

import numpy as np
import pytest

from cryosampler.evaluation.validate import CLASH_CUTOFF, clash_counts
from cryosampler.io.atomic_files import read_structure
from cryosampler.io.structure import Structure
from cryosampler.physics.relax import INSTALL, check_relaxable, relax, require_openmm

from conftest import make_helix

# Å: what relaxation may move the atoms that were not planted (the aim for a sample).
KEEPS_WITHIN = 0.3


def _subset(structure: Structure, keep: np.ndarray, name: str) -> Structure:
    return Structure(coords=structure.coords[keep], elements=structure.elements[keep],
                     atomic_numbers=structure.atomic_numbers[keep], atom_names=structure.atom_names[keep],
                     res_names=structure.res_names[keep], res_nums=structure.res_nums[keep],
                     chain_id=structure.chain_id, name=name)


def _index(structure: Structure, res_num: int, atom: str) -> int:
    return int(np.flatnonzero((structure.res_nums == res_num) & (structure.atom_names == atom))[0])


@pytest.fixture
def helix_fragment(shared_pdb) -> Structure:
    """4CLN's central helix, residues 65–92 without 78: a gap (two chains for Amber14, never bonded across) and a
    C-terminus without OXT (added for Amber14, not returned)."""
    structure = read_structure(shared_pdb("4cln.pdb"))
    keep = (structure.res_nums >= 65) & (structure.res_nums <= 92) & (structure.res_nums != 78)
    return _subset(structure, keep, "4cln_65-92")


def test_relaxation_removes_a_planted_clash_and_keeps_the_rest_in_place(helix_fragment):
    pytest.importorskip("openmm")
    reference = helix_fragment
    # Lys 75 NZ pushed to 1.6 Å of the nearest atom of a residue at least three away.
    moved = _index(reference, 75, "NZ")
    far = np.abs(reference.res_nums - 75) >= 3
    distance = np.linalg.norm(reference.coords - reference.coords[moved], axis=1)
    target = int(np.flatnonzero(far)[np.argmin(distance[far])])
    planted = reference.coords.copy()
    direction = planted[moved] - planted[target]
    planted[moved] = planted[target] + 1.6 * direction / np.linalg.norm(direction)
    assert clash_counts(reference.coords[None], reference)[0] == 0 and clash_counts(planted[None], reference)[0] >= 1

    state = random.getstate()
    relaxed, report = relax(np.stack([planted, planted]), reference)
    assert random.getstate() == state  # OpenMM's use of Python's random leaves the caller's stream alone
    assert np.array_equal(relaxed[0], relaxed[1])  # deterministic
    assert relaxed.shape == (2, *planted.shape)
    assert list(clash_counts(relaxed, reference)) == [0, 0]
    rest = np.arange(reference.n_atoms) != moved
    assert np.sqrt(np.mean(np.sum((relaxed[0][rest] - planted[rest]) ** 2, axis=1))) <= KEEPS_WITHIN
    assert np.linalg.norm(relaxed[0][moved] - relaxed[0][target]) >= CLASH_CUTOFF
    # The gap stays a gap: 77's C and 79's N, 3.2 Å apart, stay apart (a bond across pulls them to 1.4 Å).
    c, n = _index(reference, 77, "C"), _index(reference, 79, "N")
    assert np.linalg.norm(relaxed[0][c] - relaxed[0][n]) > 2.5
    assert report.rmsd == pytest.approx(np.sqrt(np.mean(np.sum((relaxed - planted) ** 2, axis=2), axis=1)))
    assert np.all(report.energy_after < report.energy_before) and np.all(report.seconds > 0)


def test_a_backbone_only_model_is_refused_in_one_line():
    helix = make_helix(6)
    backbone = _subset(helix, helix.atom_names != "CB", "backbone")
    with pytest.raises(ValueError, match=r"^backbone: a backbone-only model \(no side-chain atoms\)") as error:
        check_relaxable(backbone)
    assert "\n" not in str(error.value)
    check_relaxable(helix)  # the same helix with its CB atoms: every heavy atom of alanine


def test_incomplete_and_non_standard_residues_are_named(shared_pdb):
    incomplete = read_structure(shared_pdb("1cll.pdb"))  # Leu 4 has no side chain beyond CA
    with pytest.raises(ValueError, match=r"1 residue\(s\) lack heavy atoms.*LEU 4 lacks CB CG CD1 CD2;"):
        check_relaxable(incomplete, "1cll.pdb")
    modified = read_structure(shared_pdb("1prw.pdb"))  # trimethyllysine 115 (its ACE cap is fine)
    with pytest.raises(ValueError, match=r"^1prw.pdb: Amber14 cannot parameterise residue\(s\) M3L 115;"):
        check_relaxable(modified, "1prw.pdb")
    check_relaxable(read_structure(shared_pdb("4cln.pdb")))


def test_without_openmm_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "openmm", None)  # import openmm now fails, as where it is not installed
    with pytest.raises(ValueError) as error:
        require_openmm("--relax")
    assert str(error.value) == "--relax needs OpenMM, which is not installed: pip install -e '.[relax]'"
    helix = make_helix(4)
    with pytest.raises(ValueError, match=re.escape(INSTALL)):
        relax(helix.coords[None], helix)


def test_an_ace_cap_is_relaxed_with_its_chain(shared_pdb):
    pytest.importorskip("openmm")
    structure = read_structure(shared_pdb("1prw.pdb"))
    capped = _subset(structure, structure.res_nums <= 20, "1prw_0-20")  # ACE 0, then 20 amino acids
    assert capped.res_names[0] == "ACE"
    relaxed, report = relax(capped.coords[None], capped)
    assert clash_counts(relaxed, capped)[0] == 0 and report.rmsd[0] <= KEEPS_WITHIN
