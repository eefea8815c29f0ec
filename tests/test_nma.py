"""Normal-mode motion: endpoint amplitude, symmetric states, sign convention, ANM sampling."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cryosampler.physics.nma import MotionConfig, anm_mode, anm_modes, sample_anm_conformations, simulate_motion
from cryosampler.io.atomic_files import read_structure
from cryosampler.physics.superpose import optimal_rotation


@pytest.fixture
def cam(shared_pdb):
    return read_structure(shared_pdb("4cln.pdb"))


def test_endpoints_are_symmetric_at_the_requested_rmsd(cam):
    motion = simulate_motion(cam, MotionConfig(rmsd=4.0))
    for state in (motion.state_a, motion.state_b):
        plain = np.sqrt(np.mean(np.sum((state - cam.coords) ** 2, axis=-1)))
        assert abs(plain - 4.0) < 1e-3
    np.testing.assert_allclose(motion.state_a - cam.coords, cam.coords - motion.state_b, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(motion.mode), 1.0)


def test_mode_sign_follows_the_anchor_in_any_frame(cam):
    anchor_motion = simulate_motion(cam)
    rotation = Rotation.from_euler("xyz", [40, -70, 110], degrees=True).as_matrix()
    moved = cam.with_coords(cam.coords @ rotation.T + 25.0)
    motion = simulate_motion(moved, anchor=(cam, anchor_motion.mode))
    back = motion.mode @ rotation  # into the anchor's frame
    assert np.sum(back * anchor_motion.mode) > 0.99


def test_homologue_modes_overlap_after_orientation(shared_pdb, cam):
    exr = read_structure(shared_pdb("1exr.pdb"))
    anchor = (exr, simulate_motion(exr).mode)
    motion = simulate_motion(cam, anchor=anchor)
    # Same sign: the displacements of the common CA atoms, rotated into 1EXR's frame, point alike.
    own = dict(zip(cam.backbone_res_nums.tolist(), cam.backbone_index[:, 1]))
    ref = dict(zip(exr.backbone_res_nums.tolist(), exr.backbone_index[:, 1]))
    common = sorted(set(own) & set(ref))
    r = optimal_rotation(cam.coords[[own[k] for k in common]], exr.coords[[ref[k] for k in common]])
    u = (motion.mode[[own[k] for k in common]] @ r.T).ravel()
    v = anchor[1][[ref[k] for k in common]].ravel()
    assert u @ v / np.linalg.norm(u) / np.linalg.norm(v) > 0.9


def test_anm_mode_is_unit_and_per_atom(cam):
    mode, eigenvalue = anm_mode(cam)
    assert mode.shape == (cam.n_atoms, 3) and eigenvalue > 0


def test_anm_sampling_is_seeded_and_leaves_global_state(cam):
    # The legacy global generator is read on purpose (NPY002): the library must leave it alone.
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    a = sample_anm_conformations(cam, n_samples=4, rmsd=2.0, seed=3)
    b = sample_anm_conformations(cam, n_samples=4, rmsd=2.0, seed=3)
    assert a.shape == (4, cam.n_atoms, 3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002


def test_anm_modes_are_unit_orthogonal_and_start_with_anm_mode(cam):
    modes, eigenvalues = anm_modes(cam, 4)
    assert modes.shape == (4, cam.n_atoms, 3) and np.all(np.diff(eigenvalues) >= 0)
    np.testing.assert_allclose(np.linalg.norm(modes.reshape(4, -1), axis=1), 1.0)
    mode, eigenvalue = anm_mode(cam)
    np.testing.assert_allclose(modes[0], mode, atol=1e-9)
    assert eigenvalue == pytest.approx(eigenvalues[0], rel=1e-9)
    # Extended to heavy atoms the modes stay nearly orthogonal (each residue's atoms move with its CA).
    gram = modes.reshape(4, -1) @ modes.reshape(4, -1).T
    assert np.abs(gram - np.eye(4)).max() < 0.2
    with pytest.raises(ValueError, match="n_modes must be a positive int"):
        anm_modes(cam, 0)
