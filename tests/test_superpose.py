"""Superposition and RMSD, checked against mdtraj as an independent reference."""

import mdtraj
import numpy as np
from scipy.spatial.transform import Rotation

from cryosampler.physics.superpose import rmsd, rmsd_matrix, superpose


def _random_structure(rng, n=50):
    return rng.normal(scale=8.0, size=(n, 3))


def test_rigidly_moved_copy_has_zero_rmsd():
    rng = np.random.default_rng(0)
    x = _random_structure(rng)
    moved = x @ Rotation.random(random_state=1).as_matrix().T + np.array([5.0, -3.0, 12.0])
    assert rmsd(moved, x) < 1e-6
    np.testing.assert_allclose(superpose(moved, x), x, atol=1e-6)


def test_rmsd_matches_mdtraj():
    rng = np.random.default_rng(2)
    x = _random_structure(rng)
    y = x @ Rotation.random(random_state=3).as_matrix().T + rng.normal(scale=1.5, size=x.shape) + 4.0
    top = mdtraj.Topology()
    residue = top.add_residue("ALA", top.add_chain())
    for _ in range(len(x)):
        top.add_atom("CA", mdtraj.element.carbon, residue)
    trajectory = mdtraj.Trajectory(np.stack([x, y]) / 10.0, top)  # mdtraj works in nm
    expected = 10.0 * mdtraj.rmsd(trajectory, trajectory, frame=0)[1]
    assert abs(rmsd(y, x) - expected) < 1e-4


def test_rmsd_matrix_shape_and_symmetry():
    rng = np.random.default_rng(4)
    states = np.stack([_random_structure(rng) for _ in range(2)])
    samples = np.stack([states[1], states[0], states[0] + 0.1])
    m = rmsd_matrix(samples, states)
    assert m.shape == (3, 2)
    assert m[0, 1] < 1e-6 and m[1, 0] < 1e-6
    assert abs(m[0, 0] - rmsd(states[0], states[1])) < 1e-9


def test_pairwise_rmsd_equals_the_pair_by_pair_superposition():
    from cryosampler.physics.superpose import pairwise_rmsd, rmsd_matrix

    rng = np.random.default_rng(11)
    coords = rng.normal(size=(9, 40, 3)) * 5.0
    turn = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    coords[1] = coords[0] @ (turn * np.sign(np.linalg.det(turn))).T + 4.0  # a rigid copy: RMSD 0
    coords[2] = coords[0] * np.array([1.0, 1.0, -1.0])  # a mirror image: not superposable by a rotation
    got = pairwise_rmsd(coords)
    np.testing.assert_allclose(got, rmsd_matrix(coords, coords), atol=1e-5)
    assert got[0, 1] < 1e-5 and got[0, 2] > 1.0
    np.testing.assert_allclose(got, got.T, atol=1e-6)
