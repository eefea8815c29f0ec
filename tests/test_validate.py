"""Validity of samples on hand-built cases with known answers, checked against independent references (brute-force
distances, mdtraj's residue templates, BioEmu's filter rebuilt on mdtraj as BioEmu computes it)."""

import mdtraj
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from cryosampler.evaluation.validate import (BIOEMU_MAX_C_N, CHAIN_BREAK, bond_angles, clash_counts, covalent_bonds,
                                             sample_validity, validity, validity_summary, validity_table,
                                             validity_warning)
from cryosampler.io.atomic_files import read_structure, write_pdb
from cryosampler.io.structure import Structure
from conftest import make_helix

def _brute_force_clashes(coords, res_nums, cutoff=2.2):
    d = cdist(coords, coords)
    far = np.abs(res_nums[:, None] - res_nums[None, :]) >= 2
    return int(np.sum(np.triu((d < cutoff) & far, k=1)))


def test_validity_bonds_match_mdtraj_templates(shared_pdb):
    # The inferred bond set is checked through its count against mdtraj's residue templates.
    path = shared_pdb("4cln.pdb")
    reference = read_structure(path)
    top = mdtraj.load_pdb(str(path)).topology
    heavy_protein = [
        (a, b) for a, b in top.bonds
        if a.element.symbol != "H" and b.element.symbol != "H" and a.residue.is_protein and b.residue.is_protein
        and a.residue.chain.index == b.residue.chain.index == 0]
    assert validity(reference.coords[None], reference)["n_bonds"] == len(heavy_protein)


def test_validity_of_the_reference_itself(shared_pdb):
    reference = read_structure(shared_pdb("4cln.pdb"))
    result = validity(np.stack([reference.coords, reference.coords]), reference)
    for key in ("bond_dev_mean", "bond_dev_max", "ca_ca_dev_mean", "ca_ca_dev_max"):
        assert result[key] == 0.0
    # 4CLN's own short contacts in its Ca²⁺ loops (2.04-2.08 Å) are its only "clashes".
    expected = _brute_force_clashes(reference.coords, reference.res_nums)
    assert expected == 3
    assert result["clashes_per_sample"] == result["clashes_reference"] == expected
    assert validity(reference.coords[None], reference, clash_cutoff=2.0)["clashes_per_sample"] == 0


def test_validity_detects_stretched_bond_and_ca_ca(shared_pdb):
    reference = read_structure(shared_pdb("4cln.pdb"))
    n_bonds = validity(reference.coords[None], reference)["n_bonds"]
    # Stretch one carbonyl C=O by 0.5 Å: the O has no other bond.
    i_c, i_o = reference.backbone_index[10, 2], reference.backbone_index[10, 3]
    stretched = reference.coords.copy()
    bond = stretched[i_o] - stretched[i_c]
    stretched[i_o] += 0.5 * bond / np.linalg.norm(bond)
    result = validity(np.stack([reference.coords, stretched]), reference)
    assert result["bond_dev_max"] == pytest.approx(0.5)
    assert result["bond_dev_mean"] == pytest.approx(0.5 / (2 * n_bonds))
    assert result["ca_ca_dev_max"] == 0.0
    # Shift the last residue 1 Å along the last CA-CA: that virtual bond grows by 1 Å.
    last = slice(reference.residue_starts[-2], reference.residue_starts[-1])
    ca_prev, ca_last = reference.coords[reference.backbone_index[-2:, 1]]
    shifted = reference.coords.copy()
    shifted[last] += (ca_last - ca_prev) / np.linalg.norm(ca_last - ca_prev)
    assert validity(shifted[None], reference)["ca_ca_dev_max"] == pytest.approx(1.0)


def test_validity_detects_planted_clash(shared_pdb):
    reference = read_structure(shared_pdb("4cln.pdb"))
    # Put residue 20's CA 1.2 Å from residue 60's CA.
    ca = dict(zip(reference.backbone_res_nums, reference.backbone_index[:, 1]))
    planted = reference.coords.copy()
    planted[ca[20]] = planted[ca[60]] + [1.2, 0.0, 0.0]
    result = validity(np.stack([reference.coords, planted]), reference)
    n_reference, n_planted = (_brute_force_clashes(x, reference.res_nums) for x in (reference.coords, planted))
    assert n_planted > n_reference
    assert result["clashes_per_sample"] == pytest.approx((n_reference + n_planted) / 2)


def _index(structure: Structure, res_num: int, atom: str) -> int:
    return int(np.flatnonzero((structure.res_nums == res_num) & (structure.atom_names == atom))[0])


def _backbone_only(structure: Structure) -> Structure:
    keep = np.isin(structure.atom_names, ["N", "CA", "C", "O"])
    return Structure(coords=structure.coords[keep], elements=structure.elements[keep],
                     atomic_numbers=structure.atomic_numbers[keep], atom_names=structure.atom_names[keep],
                     res_names=structure.res_names[keep], res_nums=structure.res_nums[keep],
                     chain_id=structure.chain_id, name=structure.name)


def _broken(structure: Structure, after: int, ca_ca: float) -> np.ndarray:
    """The structure's coords with every residue after ``after`` moved along CA(after)→CA(after + 1) until that
    distance is ``ca_ca`` Å."""
    i, j = _index(structure, after, "CA"), _index(structure, after + 1, "CA")
    step = structure.coords[j] - structure.coords[i]
    coords = structure.coords.copy()
    coords[structure.res_nums > after] += (ca_ca / np.linalg.norm(step) - 1.0) * step
    return coords


@pytest.mark.parametrize("make", [make_helix, lambda: _backbone_only(make_helix())], ids=["helix", "backbone only"])
def test_the_reference_itself_has_no_deviation(make):
    reference = make()
    table = sample_validity(np.stack([reference.coords, reference.coords]), reference)
    assert list(table["sample"]) == [0, 1]
    for column in ("bond_dev_rmsd", "bond_dev_max", "angle_dev_rmsd", "angle_dev_max", "clashes", "chain_breaks",
                   "bioemu_clashes"):
        assert (table[column] == 0).all(), column
    assert table["bioemu_physical"].all()
    # Backbone-only: N–CA, CA–C, C=O per residue and the peptide bonds; with CB one more per residue.
    n = reference.n_residues
    assert len(covalent_bonds(reference)) == (3 if reference.n_atoms == 4 * n else 4) * n + n - 1


def test_bond_angles_are_the_pairs_of_bonds_that_share_an_atom():
    bonds = np.array([[0, 1], [1, 2], [1, 3], [3, 4]])
    assert bond_angles(bonds).tolist() == [[0, 1, 2], [0, 1, 3], [2, 1, 3], [1, 3, 4]]


def test_a_stretched_bond_shows_in_the_bond_deviation_and_a_bent_one_in_the_angles():
    reference = make_helix()
    n_bonds = len(covalent_bonds(reference))
    i_c, i_o = _index(reference, 5, "C"), _index(reference, 5, "O")
    stretched = reference.coords.copy()
    bond = stretched[i_o] - stretched[i_c]
    stretched[i_o] += 0.3 * bond / np.linalg.norm(bond)
    # Bend C=O by 10° about an axis normal to the CA–C–O plane: its angles to CA and to the next N change.
    bent = reference.coords.copy()
    axis = np.cross(bent[_index(reference, 5, "CA")] - bent[i_c], bond)
    axis /= np.linalg.norm(axis)
    theta = np.radians(10.0)
    bent[i_o] = bent[i_c] + (bond * np.cos(theta) + np.cross(axis, bond) * np.sin(theta)
                             + axis * (axis @ bond) * (1 - np.cos(theta)))
    table = sample_validity(np.stack([stretched, bent]), reference).set_index("sample")
    assert table.loc[0, "bond_dev_max"] == pytest.approx(0.3)
    assert table.loc[0, "bond_dev_rmsd"] == pytest.approx(0.3 / np.sqrt(n_bonds))
    assert table.loc[0, "angle_dev_max"] == pytest.approx(0.0, abs=1e-9)  # along the bond: no angle changes
    assert table.loc[1, "bond_dev_max"] == pytest.approx(0.0, abs=1e-9)
    assert table.loc[1, "angle_dev_max"] == pytest.approx(10.0)  # CA–C=O opens by exactly 10°
    assert table["bioemu_physical"].all()


def test_a_planted_clash_is_counted():
    reference = make_helix()
    planted = reference.coords.copy()
    planted[_index(reference, 2, "CB")] = planted[_index(reference, 8, "CB")] + [0.8, 0.0, 0.0]
    table = sample_validity(np.stack([reference.coords, planted]), reference)
    assert _brute_force_clashes(planted, reference.res_nums) > 0
    assert list(table["clashes"]) == [_brute_force_clashes(x, reference.res_nums) for x in (reference.coords, planted)]
    assert list(clash_counts(np.stack([reference.coords, planted]), reference)) == list(table["clashes"])
    assert list(table["bioemu_clashes"]) == [0, 1] and list(table["bioemu_physical"]) == [True, False]
    assert list(table["bioemu_ca_ca_ok"]) == [True, True] and list(table["bioemu_clash_free"]) == [True, False]


def test_a_chain_break_is_counted_and_fails_bioemus_filter():
    reference = make_helix()
    broken, stretched = _broken(reference, 5, 5.0), _broken(reference, 5, 4.3)
    table = sample_validity(np.stack([broken, stretched]), reference)
    assert list(table["chain_breaks"]) == [1, 1]
    assert table["ca_ca_max"].tolist() == pytest.approx([5.0, 4.3])
    # 5 Å fails BioEmu's CA–CA test (4.5 Å); 4.3 Å is a break here (> 4.2 Å) but passes BioEmu's.
    assert list(table["bioemu_ca_ca_ok"]) == [False, True]
    assert list(table["bioemu_c_n_ok"]) == list(table["c_n_max"] < BIOEMU_MAX_C_N)
    assert not table.loc[0, "bioemu_physical"]
    assert (table["bond_dev_max"] > 0).all()  # the peptide C–N across the break is stretched


def test_a_gap_in_the_numbering_is_no_chain_break():
    helix = make_helix(12)
    numbers = np.where(helix.res_nums > 6, helix.res_nums + 5, helix.res_nums)  # residues 7–11 missing
    gapped = Structure(coords=_broken(helix, 6, 8.0), elements=helix.elements, atomic_numbers=helix.atomic_numbers,
                       atom_names=helix.atom_names, res_names=helix.res_names, res_nums=numbers, chain_id="A",
                       name="gapped")
    table = sample_validity(gapped.coords[None], gapped)
    assert table.loc[0, "chain_breaks"] == 0 and table.loc[0, "bioemu_physical"]


def _bioemu_filter_with_mdtraj(path) -> np.ndarray:
    """BioEmu's filter_unphysical_traj masks as BioEmu computes them, on mdtraj (residues consecutive in the file)."""
    traj = mdtraj.load(str(path))
    pairs = np.array([(r.index, r.index + 1) for r in list(traj.topology.residues)[:-1]])
    ca_ca, _ = mdtraj.compute_contacts(traj, scheme="ca", contacts=pairs, periodic=False)
    c_n = mdtraj.compute_distances(traj, [(traj.topology.residue(i).atom("C").index,
                                           traj.topology.residue(j).atom("N").index) for i, j in pairs],
                                   periodic=False)
    contacts, _ = mdtraj.compute_contacts(traj, periodic=False)  # closest heavy atoms, residues ≥ 3 apart
    return np.stack([np.all(ca_ca * 10 < 4.5, axis=1), np.all(c_n * 10 < 2.0, axis=1),
                     np.all(contacts * 10 > 1.0, axis=1)], axis=1)


def test_bioemus_filter_agrees_with_bioemus_own_computation(shared_pdb, tmp_path):
    reference = read_structure(shared_pdb("4cln.pdb"))
    assert np.all(np.diff(reference.backbone_res_nums) == 1)  # no gaps, so both take the same neighbours
    # CB of residue 20 moved 0.9 Å (a clash) and 1.1 Å (none) beyond CB of residue 60, along its CA→CB.
    cb, ca = reference.coords[_index(reference, 60, "CB")], reference.coords[_index(reference, 60, "CA")]
    clash, near = reference.coords.copy(), reference.coords.copy()
    clash[_index(reference, 20, "CB")] = cb + 0.9 * (cb - ca) / np.linalg.norm(cb - ca)
    near[_index(reference, 20, "CB")] = cb + 1.1 * (cb - ca) / np.linalg.norm(cb - ca)
    peptide = reference.coords.copy()  # C–N of 40–41 at 2.2 Å, CA–CA still 3.8 Å
    i_c, i_n = _index(reference, 40, "C"), _index(reference, 41, "N")
    peptide[i_c] += (peptide[i_c] - peptide[i_n]) * (2.2 / np.linalg.norm(peptide[i_c] - peptide[i_n]) - 1.0)
    samples = np.stack([reference.coords, clash, near, peptide, _broken(reference, 80, 5.0)])
    write_pdb(tmp_path / "samples.pdb", reference, samples)
    table = sample_validity(samples, reference)
    ours = table[["bioemu_ca_ca_ok", "bioemu_c_n_ok", "bioemu_clash_free"]].to_numpy()
    expected = _bioemu_filter_with_mdtraj(tmp_path / "samples.pdb")
    np.testing.assert_array_equal(ours, expected)
    assert list(table["bioemu_physical"]) == [True, False, True, False, False]


def test_the_summary_line_reports_the_table():
    reference = make_helix()
    planted = reference.coords.copy()
    planted[_index(reference, 2, "CB")] = planted[_index(reference, 8, "CB")] + [0.8, 0.0, 0.0]
    samples = np.stack([reference.coords, planted, _broken(reference, 5, 5.0)])
    table = sample_validity(samples, reference, first=10)
    assert list(table["sample"]) == [10, 11, 12]
    line = validity_summary(table, reference)
    clashes = table["clashes"].mean()
    bonds = np.sqrt(np.mean(table["bond_dev_rmsd"] ** 2))
    # Clashes and chain breaks alike per sample (issue 35: "472.9 clashes per sample …, 461 chain breaks" in all).
    assert line.startswith(f"3 samples, {clashes:.1f} clashes < 2.2 Å and 0.3 chain breaks (CA–CA > "
                           f"{CHAIN_BREAK:g} Å) per sample (reference 0 clashes), bond lengths ±{bonds:.3f} Å and "
                           "angles ±")
    assert line.endswith("rms from the reference, 1/3 pass BioEmu's filter")
    assert validity_summary(table, reference, noun="models").startswith("3 models, ")
    assert "per model" in validity_summary(table, reference, noun="models")
    assert validity_summary(table[:1], reference).startswith("1 sample, ")


def test_the_warning_counts_the_samples_that_fail_the_filter_and_says_what_they_are():
    reference = make_helix()
    planted = reference.coords.copy()
    planted[_index(reference, 2, "CB")] = planted[_index(reference, 8, "CB")] + [0.8, 0.0, 0.0]
    table = sample_validity(np.stack([reference.coords, planted, _broken(reference, 5, 5.0)]), reference)
    line = validity_warning(table)
    assert line.startswith("2 of 3 samples fail BioEmu's filter of unphysical structures (0–2 clashes and 0–1 chain "
                           "breaks per sample among them)")
    assert "measures the breakage, not motion" in line
    assert validity_warning(table[:1]) is None


def test_sample_validity_rejects_samples_of_another_atom_set():
    reference = make_helix()
    with pytest.raises(ValueError, match="samples must have shape"):
        sample_validity(reference.coords[None, :-1], reference)


def test_validity_table_has_a_row_per_ensemble_and_the_target_rows():
    reference = make_helix()
    planted = reference.coords.copy()
    planted[_index(reference, 2, "CB")] = planted[_index(reference, 8, "CB")] + [0.8, 0.0, 0.0]
    ours = np.stack([reference.coords, planted, _broken(reference, 5, 5.0)])
    table = validity_table([({"slot": "tiny", "method": "Ours"}, ours, reference),
                            ({"slot": "tiny", "method": "target A"}, reference.coords[None], reference)])
    assert list(table.columns[:2]) == ["slot", "method"] and table.columns[2] == "samples"
    assert list(table["method"]) == ["Ours", "target A"] and list(table["samples"]) == [3, 1]
    row = table.set_index("method").loc["Ours"]
    n_planted = _brute_force_clashes(planted, reference.res_nums)
    assert n_planted > 0
    assert row["clashes_per_sample"] == pytest.approx(n_planted / 3)
    assert row["chain_breaks_per_sample"] == pytest.approx(1 / 3)
    assert row["ca_ca_max"] == pytest.approx(5.0)
    assert row["bioemu_pass"] == pytest.approx(1 / 3)  # the planted clash and the break each fail the filter
    per_sample = sample_validity(ours, reference)
    assert row["bond_dev_rmsd"] == pytest.approx(np.sqrt(np.mean(per_sample["bond_dev_rmsd"] ** 2)))
    assert row["angle_dev_max"] == pytest.approx(per_sample["angle_dev_max"].max())
    target = table.set_index("method").loc["target A"]
    for column in ("clashes_per_sample", "clashes_reference", "chain_breaks_per_sample", "bond_dev_rmsd",
                   "bond_dev_max", "angle_dev_rmsd", "angle_dev_max"):
        assert target[column] == 0, column
    assert target["bioemu_pass"] == 1.0


def test_validity_table_labels_may_differ_between_rows():
    reference = make_helix()
    table = validity_table([({"method": "Ours", "training maps": "clean"}, reference.coords[None], reference),
                            ({"method": "static reference"}, reference.coords[None], reference)])
    assert list(table.columns[:2]) == ["method", "training maps"]
    assert table["training maps"].isna().tolist() == [False, True]


@pytest.mark.parametrize("case", ["no ensembles", "label named like a column", "samples of another atom set"])
def test_validity_table_rejects_bad_input(case):
    reference = make_helix()
    ensembles = {"no ensembles": [],
                 "label named like a column": [({"samples": "Ours"}, reference.coords[None], reference)],
                 "samples of another atom set": [({"method": "Ours"}, reference.coords[None, :-1], reference)]}[case]
    match = {"no ensembles": "no ensembles to judge", "label named like a column": "'samples' is a validity column",
             "samples of another atom set": "samples must have shape"}[case]
    with pytest.raises(ValueError, match=match):
        validity_table(ensembles)
