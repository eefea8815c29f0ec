"""The mode-transfer baseline: apply a homologue's state displacements to a new protein.

It uses the *atoms* of a training protein's states, which CryoSampler never sees (it sees only maps), so
it is no fair competitor; it measures how much of the task is one shared motion.
"""

from __future__ import annotations

import numpy as np

from cryosampler.io.structure import Structure
from cryosampler.io.correspondence import match_atoms, shared_ca
from cryosampler.physics.superpose import optimal_rotation, rmsd

__all__ = ["ca_rmsd", "nearest_donor", "transfer_states"]


def _common_ca(a: Structure, b: Structure) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of CA atoms (a, b) of residue numbers present in both."""
    ca_a, rows_b = shared_ca(a, b.backbone_res_nums)
    if len(ca_a) < 3:
        raise ValueError(f"{a.name} and {b.name} share fewer than 3 residue numbers")
    return ca_a, b.backbone_index[rows_b, 1]


def ca_rmsd(a: Structure, b: Structure) -> float:
    """CA RMSD (Å) after superposition over residue numbers present in both."""
    ia, ib = _common_ca(a, b)
    return rmsd(a.coords[ia], b.coords[ib])


def nearest_donor(target: Structure, donors: dict[str, Structure]) -> str:
    """Key of the donor whose reference is nearest to ``target`` by CA RMSD."""
    return min(donors, key=lambda k: ca_rmsd(target, donors[k]))


def transfer_states(target: Structure, donor: Structure, donor_states: np.ndarray) -> tuple[np.ndarray, float]:
    """The donor's state displacements (K, N_donor, 3) moved onto ``target``.

    Displacements (state − donor reference) are rotated into the target's frame (CA superposition) and
    matched by residue number and atom name; a target atom without a match takes the displacement of
    its residue's CA, or none if that is missing too. Returns (states (K, N, 3) Å, fraction of target
    atoms matched by name).
    """
    ia, ib = _common_ca(target, donor)
    rotation = optimal_rotation(donor.coords[ib], target.coords[ia])  # donor frame → target frame
    displacement = (donor_states - donor.coords) @ rotation.T  # (K, N_donor, 3)
    idx_t, idx_d, _ = match_atoms(target, donor)
    moved = np.zeros((len(donor_states), target.n_atoms, 3))
    moved[:, idx_t] = displacement[:, idx_d]
    unmatched = np.setdiff1d(np.arange(target.n_atoms), idx_t)
    donor_ca = dict(zip(donor.backbone_res_nums.tolist(), donor.backbone_index[:, 1]))
    for atom in unmatched:
        ca = donor_ca.get(int(target.res_nums[atom]))
        if ca is not None:
            moved[:, atom] = displacement[:, ca]
    return target.coords + moved, len(idx_t) / target.n_atoms
