"""Normal-mode motion of a structure (appendix A.4), wrapping ProDy's ANM.

The training states are the two endpoints of a traversal along the first non-trivial ANM mode,
computed on CA atoms and extended to all heavy atoms; the structure the traversal starts from is the
static reference X_ref. ProDy's camelCase API stays inside this module.

Sign convention. An eigenvector's sign is arbitrary, and the first modes of different calmodulins come
out with opposite signs (|cos| ≈ 0.997 after superposition). So that "state A" means the same motion for
every protein, each mode is oriented against an *anchor* mode (the first training protein's):
the protein's CA displacements are rotated into the anchor's frame (optimal superposition of the
CA atoms matched by residue number) and the sign is chosen so that their dot product with the anchor's
is positive. The anchor itself is oriented so that its largest CA displacement component is positive.
State A is ``X_ref + a·u``, state B is ``X_ref − a·u`` with the oriented mode u.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import prody

from cryosampler.io.structure import Structure
from cryosampler.io.correspondence import shared_ca
from cryosampler.physics.superpose import optimal_rotation

__all__ = ["MotionConfig", "Motion", "anm_modes", "anm_mode", "orient_like", "orient_anchor", "traverse_endpoints",
           "simulate_motion", "sample_anm_conformations"]

prody.confProDy(verbosity="none")


@dataclass(frozen=True)
class MotionConfig:
    """ANM normal-mode motion parameters (A.4)."""

    cutoff: float = 15.0  # Å, ANM contact cutoff (ProDy default)
    gamma: float = 1.0  # spring constant (ProDy default)
    mode_index: int = 0  # 0 = first non-trivial mode ("the first mode" of A.4)
    rmsd: float = 4.0  # Å, RMSD of each endpoint from the reference (the paper's "4 Å motion")


@dataclass(frozen=True)
class Motion:
    """A protein's normal-mode motion and its two end states; arrays follow the Structure's atom order."""

    mode: np.ndarray  # (N, 3) float64, unit norm over all 3N components, oriented (see module doc)
    eigenvalue: float
    state_a: np.ndarray  # (N, 3) float64, Å: X_ref + a·mode
    state_b: np.ndarray  # (N, 3) float64, Å: X_ref − a·mode


def _atom_group(structure: Structure) -> prody.AtomGroup:
    """An AtomGroup whose residues are the ANM nodes: cap atoms join the nearest amino-acid residue.

    ProDy extends a CA mode to every atom of the CA's residue; a cap without CA (1PRW's ACE) would have no
    node, so its atoms are labelled with the residue number of the amino-acid residue it is bonded to.
    """
    ag = prody.AtomGroup(structure.name)
    ag.setCoords(structure.coords)
    ag.setNames(structure.atom_names)
    ag.setResnames(structure.res_names)
    ag.setElements(structure.elements)
    ag.setChids(structure.chain_ids)
    node_res = structure.res_nums.copy()
    aa_res = structure.backbone_res_nums
    for k in range(structure.n_residues):
        lo, hi = structure.residue_starts[k], structure.residue_starts[k + 1]
        if structure.res_nums[lo] not in aa_res:
            node_res[lo:hi] = aa_res[np.argmin(np.abs(aa_res - structure.res_nums[lo]))]
    ag.setResnums(node_res)
    return ag


def _extended_anm(structure: Structure, n_modes: int,
                  config: MotionConfig) -> tuple[prody.ANM, prody.NMA, prody.AtomGroup]:
    """The ``n_modes`` lowest ANM modes on CA atoms, and the same modes extended to every heavy atom.

    Returns (CA model, extended model, the AtomGroup it is extended over, in the Structure's atom order).
    """
    ag = _atom_group(structure)
    ca = ag.select("name CA")
    if ca is None or ca.numAtoms() < 3:
        raise ValueError(f"{structure.name}: fewer than 3 CA atoms; cannot build an ANM")
    anm = prody.ANM(structure.name)
    anm.buildHessian(ca, cutoff=config.cutoff, gamma=config.gamma)
    anm.calcModes(n_modes=n_modes)
    extended, atoms = prody.extendModel(anm, ca, ag, norm=True)
    assert np.array_equal(atoms.getIndices(), np.arange(structure.n_atoms)), "ProDy reordered atoms"
    return anm, extended, ag


def anm_modes(structure: Structure, n_modes: int,
              config: MotionConfig = MotionConfig()) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_modes`` lowest non-trivial ANM modes on CA atoms, extended to all heavy atoms (``config.mode_index``
    is not used).

    Returns
    -------
    modes : (n_modes, N, 3) float64, each of unit norm over its 3N components, in the Structure's atom order;
        signs as ProDy gives them.
    eigenvalues : (n_modes,) float64, ascending (ProDy units, γ = config.gamma).
    """
    if not (isinstance(n_modes, int) and n_modes >= 1):
        raise ValueError(f"n_modes must be a positive int, got {n_modes!r}")
    anm, extended, _ = _extended_anm(structure, n_modes, config)
    modes = extended.getArray().T.reshape(-1, structure.n_atoms, 3)  # (M, N, 3)
    modes = modes / np.linalg.norm(modes.reshape(len(modes), -1), axis=1)[:, None, None]
    return modes.astype(np.float64), np.asarray(anm.getEigvals(), np.float64)


def anm_mode(structure: Structure, config: MotionConfig = MotionConfig()) -> tuple[np.ndarray, float]:
    """ANM mode ``config.mode_index`` on CA atoms, extended to all heavy atoms.

    Returns
    -------
    mode : (N, 3) float64, unit norm over all 3N components, in the Structure's atom order.
    eigenvalue : float (ProDy units, γ = config.gamma).
    """
    modes, eigenvalues = anm_modes(structure, config.mode_index + 1, config)
    return modes[config.mode_index], float(eigenvalues[config.mode_index])


def orient_anchor(structure: Structure, mode: np.ndarray) -> np.ndarray:
    """Orient the anchor protein's mode: its largest-magnitude CA displacement component is positive."""
    ca = mode[structure.backbone_index[:, 1]].ravel()
    return mode if ca[np.argmax(np.abs(ca))] > 0 else -mode


def orient_like(structure: Structure, mode: np.ndarray, anchor: Structure,
                anchor_mode: np.ndarray) -> np.ndarray:
    """Flip ``mode`` if needed so that it points like ``anchor_mode`` (see module doc).

    CA atoms are matched by residue number; at least 10 common residues are required.
    """
    ca, rows = shared_ca(structure, anchor.backbone_res_nums)
    if len(ca) < 10:
        raise ValueError(f"{structure.name} and anchor {anchor.name} share only {len(ca)} residue "
                         "numbers; cannot orient the mode against the anchor")
    anchor_ca = anchor.backbone_index[rows, 1]
    rotation = optimal_rotation(structure.coords[ca], anchor.coords[anchor_ca])  # (3, 3)
    own = mode[ca] @ rotation.T  # (L_common, 3), anchor frame
    overlap = float(np.sum(own * anchor_mode[anchor_ca]))
    return mode if overlap >= 0 else -mode


def traverse_endpoints(structure: Structure, mode: np.ndarray, rmsd: float) -> tuple[np.ndarray, np.ndarray]:
    """The two ends of ProDy's ``traverseMode`` along ``mode``: (X_ref + a·u, X_ref − a·u), each ``rmsd`` Å
    (plain RMSD, no superposition) from the reference. Both (N, 3) float64, Å."""
    ag = _atom_group(structure)
    vector = prody.Vector(mode.ravel(), "mode")
    ensemble = prody.traverseMode(vector, ag, n_steps=1, rmsd=rmsd)
    coords = ensemble.getCoordsets()  # (3, N, 3): −, 0, +
    return coords[2].astype(np.float64), coords[0].astype(np.float64)


def simulate_motion(structure: Structure, config: MotionConfig = MotionConfig(),
                    anchor: tuple[Structure, np.ndarray] | None = None) -> Motion:
    """Mode, orientation and end states of one protein.

    anchor : (anchor structure, anchor's oriented mode), or None when this protein is the anchor.
    """
    mode, eigenvalue = anm_mode(structure, config)
    mode = orient_anchor(structure, mode) if anchor is None else orient_like(structure, mode, *anchor)
    state_a, state_b = traverse_endpoints(structure, mode, config.rmsd)
    return Motion(mode=mode, eigenvalue=eigenvalue, state_a=state_a, state_b=state_b)


def sample_anm_conformations(structure: Structure, n_samples: int, rmsd: float, n_modes: int = 3,
                             config: MotionConfig = MotionConfig(),
                             seed: int = 0) -> np.ndarray:
    """Random conformations along the ``n_modes`` lowest ANM modes, as ProDy's ``sampleModes`` draws them.

    Returns (n_samples, N, 3) float64, Å; the average RMSD from the reference is ``rmsd``.
    ``sampleModes`` draws its coefficients from numpy's global generator; this is its formula with the
    coefficients drawn from a generator of its own, ``np.random.RandomState(seed)`` (the legacy stream that
    seeding the global one would give, so the samples are those of the seeded ProDy call), and nothing global
    is touched. Conformation k is X_ref + s Σ_i r_ik λ_i^(-1/2) u_i / |u_i|, with s chosen so that the mean RMSD
    over the drawn r is ``rmsd``.
    """
    _, extended, ag = _extended_anm(structure, n_modes, config)
    variances = extended.getVariances()  # (M,) 1 / λ_i
    magnitudes = np.array([abs(mode) for mode in extended])  # (M,)
    randn = np.random.RandomState(seed).standard_normal((n_samples, len(extended)))  # (S, M)
    coef = ((randn ** 2 * variances).sum(1) ** 0.5).mean()
    scale = extended.numAtoms() ** 0.5 * float(rmsd) / coef
    scale = scale / magnitudes * variances ** 0.5  # (M,)
    array = extended._getArray()  # (3N, M)
    confs = np.array([(array * scale * r).sum(1).reshape((extended.numAtoms(), 3)) for r in randn])
    ensemble = prody.Ensemble()
    ensemble.setCoords(ag.getCoords())
    ensemble.addCoordset(confs + ag.getCoords())  # stored as ProDy stores sampleModes' output
    return ensemble.getCoordsets().astype(np.float64)
