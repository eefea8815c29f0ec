"""An ensemble beside its reference: RMSF is where the motion is, PCA finds a one-dimensional motion and places
known states at its ends, RMSDs to the reference are the superposition module's, tables and refusals."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cryosampler.evaluation.ensemble_analysis import (ca_rmsf, ensemble_report, principal_components, state_ca,
                                                      superposed_ca)
from cryosampler.physics.superpose import rmsd

from conftest import make_helix, make_two_domains


def _rigidly_moved(coords: np.ndarray, seed: int) -> np.ndarray:
    """coords (S, N, 3) each turned and shifted at random: what superposition must undo."""
    rng = np.random.default_rng(seed)
    return np.stack([Rotation.random(random_state=rng).apply(x) + rng.normal(scale=10.0, size=3) for x in coords])


def test_rmsf_is_nonzero_only_at_the_one_residue_that_moves():
    reference = make_helix(24).coords[make_helix(24).backbone_index[:, 1]]  # (24, 3) CA atoms
    rng = np.random.default_rng(0)
    samples = np.repeat(reference[None], 12, axis=0)
    samples[:, 10] += rng.normal(scale=1.0, size=(12, 3))  # residue 11 alone moves
    rmsf = ca_rmsf(_rigidly_moved(samples, 1), reference)
    assert rmsf.shape == (24,) and np.argmax(rmsf) == 10 and rmsf[10] > 0.5
    # Superposition on all 24 CA atoms spreads a little of one atom's motion onto the others, never much.
    assert np.all(np.delete(rmsf, 10) < 0.1 * rmsf[10])


def test_rmsf_of_rigid_copies_is_zero_and_one_sample_is_refused():
    reference = make_helix(10).coords
    np.testing.assert_allclose(ca_rmsf(_rigidly_moved(np.repeat(reference[None], 4, axis=0), 2), reference), 0.0,
                               atol=1e-9)
    with pytest.raises(ValueError, match="at least 2 samples, got 1"):
        ca_rmsf(reference[None], reference)


def _two_domain_motion(amplitudes: np.ndarray):
    """The two-domain protein's CA atoms with its second domain slid along y by each amplitude (Å): (S, L, 3);
    and the reference's CA atoms (L, 3)."""
    structure, moving = make_two_domains()
    ca = structure.backbone_index[:, 1]
    direction = np.where(moving[:, None], [0.0, 1.0, 0.0], 0.0)[ca]  # (L, 3)
    reference = structure.coords[ca]
    return reference + amplitudes[:, None, None] * direction, reference


def test_pca_of_samples_along_one_direction_has_one_component_and_the_states_at_its_ends():
    rng = np.random.default_rng(3)
    samples, reference = _two_domain_motion(rng.uniform(-4.0, 4.0, size=20))
    states, _ = _two_domain_motion(np.array([-4.0, 4.0]))
    pcs = principal_components(_rigidly_moved(samples, 4), reference, _rigidly_moved(states, 5))
    assert pcs.samples.shape == (20, 2) and pcs.states.shape == (2, 2)
    assert pcs.explained[0] > 0.99 and pcs.explained[1] < 0.01
    # The states lie at the two ends of the samples' spread along PC1, and on PC1's line.
    low, high = sorted(pcs.states[:, 0])
    assert low <= pcs.samples[:, 0].min() + 0.1 and high >= pcs.samples[:, 0].max() - 0.1
    assert np.sign(pcs.states[0, 0]) != np.sign(pcs.states[1, 0])
    assert np.all(np.abs(pcs.states[:, 1]) < 0.1 * (high - low))
    # The reference, the motion's middle, projects between them.
    assert low < pcs.reference[0] < high


def test_pca_is_in_angstrom_per_atom_and_its_signs_do_not_depend_on_the_samples_order():
    samples, reference = _two_domain_motion(np.linspace(-3.0, 3.0, 7))
    first = principal_components(samples, reference)
    again = principal_components(samples[::-1], reference)
    np.testing.assert_allclose(again.samples[::-1], first.samples, atol=1e-9)
    # Two samples 6 Å apart along the motion (measured as the CA RMSD between them) lie 6 Å apart on PC1.
    assert abs(first.samples[-1, 0] - first.samples[0, 0]) == pytest.approx(rmsd(samples[-1], samples[0]), rel=0.02)
    # Identical samples: nothing to explain, no error.
    flat = principal_components(np.repeat(reference[None], 3, axis=0), reference)
    assert list(flat.explained) == [0.0, 0.0]


def test_report_of_an_ensemble_gives_tables_and_rmsd_to_the_reference():
    structure = make_helix(12)
    rng = np.random.default_rng(6)
    samples = structure.coords + rng.normal(scale=0.5, size=(5, structure.n_atoms, 3))
    state = structure.with_coords(structure.coords + rng.normal(scale=1.0, size=(structure.n_atoms, 3)))
    codes = np.array(list("CHHHHHHHHEEC"))
    report = ensemble_report(samples, structure, {"open": state_ca(state, structure, "open.pdb")}, codes)
    assert [rmsd(x, structure.coords) for x in samples] == pytest.approx(list(report.rmsd_reference))
    residues = report.residue_table()
    assert list(residues.columns) == ["chain", "residue", "res_name", "secondary", "rmsf"]
    assert list(residues["residue"]) == [str(k) for k in range(1, 13)] and set(residues["chain"]) == {"A"} and "".join(residues["secondary"]) == "".join(codes)
    table = report.sample_table()
    assert list(table.columns) == ["kind", "name", "rmsd_reference", "pc1", "pc2"]
    assert list(table["kind"]) == ["sample"] * 5 + ["state"]
    assert list(table["name"]) == ["0", "1", "2", "3", "4", "open"]
    assert np.isnan(table["rmsd_reference"].iloc[-1])
    assert "5 samples of tiny, 12 residues" in report.summary()
    assert ensemble_report(samples, structure).residue_table()["secondary"].tolist() == [""] * 12


def test_report_refuses_one_sample_and_states_without_every_residue():
    structure = make_helix(12)
    with pytest.raises(ValueError, match="needs at least 2 samples, got 1"):
        ensemble_report(structure.coords[None], structure)
    with pytest.raises(ValueError, match=r"samples must have shape \(S, N, 3\) with N=60"):
        ensemble_report(np.zeros((3, 59, 3)), structure)
    shorter = make_helix(10, first_residue=3)
    with pytest.raises(ValueError, match=r"b.pdb: no CA atom for 2 of the 12 residues of the reference tiny \(by "
                                         r"residue number: 1, 2\)"):
        state_ca(shorter, structure, "b.pdb")


def test_superposed_ca_checks_shapes():
    with pytest.raises(ValueError, match=r"CA atoms must have shape \(S, L, 3\) with L=4"):
        superposed_ca(np.zeros((2, 5, 3)), np.zeros((4, 3)))
