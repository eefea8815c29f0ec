"""Mode transfer: a protein's own displacements come back; rotation of the target is followed."""

import numpy as np
from scipy.spatial.transform import Rotation

from cryosampler.physics.nma import simulate_motion
from cryosampler.io.atomic_files import read_structure
from cryosampler.experiments.transfer import ca_rmsd, nearest_donor, transfer_states


def test_self_transfer_returns_the_states_in_any_frame(shared_pdb):
    cam = read_structure(shared_pdb("4cln.pdb"))
    motion = simulate_motion(cam)
    states = np.stack([motion.state_a, motion.state_b])
    same, matched = transfer_states(cam, cam, states)
    assert matched == 1.0
    np.testing.assert_allclose(same, states, atol=1e-6)
    rotation = Rotation.from_euler("xyz", [10, 80, -30], degrees=True).as_matrix()
    moved = cam.with_coords(cam.coords @ rotation.T + 5.0)
    transferred, _ = transfer_states(moved, cam, states)
    np.testing.assert_allclose(transferred, states @ rotation.T + 5.0, atol=1e-4)


def test_nearest_donor_is_the_closest_by_ca_rmsd(shared_pdb):
    target = read_structure(shared_pdb("4cln.pdb"))
    donors = {name: read_structure(shared_pdb(f"{name}.pdb")) for name in ("1exr", "1prw")}
    assert nearest_donor(target, donors) == "1exr"
    assert ca_rmsd(target, donors["1exr"]) < ca_rmsd(target, donors["1prw"])
