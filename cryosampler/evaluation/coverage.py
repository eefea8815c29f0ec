"""The domain-motion benchmark's metrics (bioemu-benchmarks' multiconf evaluation, reimplemented: its evaluator
downloads a binary and pins numpy<2): RMSD over the backbone atoms of residues paired by sequence, coverage of the
target states over RMSD thresholds, and the area under the coverage curve."""

from __future__ import annotations

import numpy as np

from cryosampler.evaluation.metrics import checked_coords
from cryosampler.io.correspondence import aligned_atoms
from cryosampler.io.structure import BACKBONE_ATOMS, Structure
from cryosampler.physics.superpose import rmsd_matrix

__all__ = ["COVERAGE_THRESHOLDS", "SUCCESS_THRESHOLD", "aligned_rmsd_matrix", "coverage_curve", "coverage_auc"]

# Thresholds as the benchmark has them: 100 points over 0-10 Å, a state covered strictly below r.
COVERAGE_THRESHOLDS = np.linspace(0.0, 10.0, 100)  # Å
SUCCESS_THRESHOLD = 3.0  # Å


def aligned_rmsd_matrix(samples: np.ndarray, atoms: Structure, targets: list[Structure],
                        backbone: tuple[str, ...] = BACKBONE_ATOMS) -> np.ndarray:
    """The benchmark's RMSD (Å) of every sample to every target state, after optimal superposition on the
    ``backbone`` atoms (default N, CA, C, O) of the residues paired by global sequence alignment
    (:func:`aligned_atoms`), pairing each target separately.

    Parameters
    ----------
    samples : (S, N, 3) Å, atom order of ``atoms``
    atoms : Structure with N atoms (e.g. the reference the samples were drawn from)
    targets : K Structures, any residue numbering and length

    Returns
    -------
    (S, K) float64, Å; its column minimum is the best-sample RMSD per state (:func:`closest_sample_rmsd`).
    """
    samples = checked_coords(samples, f"samples of {atoms.name}", "SN", atoms.n_atoms)
    columns = []
    for target in targets:
        idx_sample, idx_target = aligned_atoms(atoms, target, backbone)
        columns.append(rmsd_matrix(samples[:, idx_sample], target.coords[idx_target][None])[:, 0])
    return np.stack(columns, axis=1).reshape(len(samples), len(targets))


def coverage_curve(best_rmsd: np.ndarray, thresholds: np.ndarray = COVERAGE_THRESHOLDS) -> np.ndarray:
    """Coverage at each threshold r: the fraction of target states whose best-sample RMSD is strictly below r.

    best_rmsd: (K,) Å, one per target state (:func:`closest_sample_rmsd`), pooled over proteins; thresholds (T,)
    Å → (T,) in [0, 1]. The benchmark averages per protein first; pooling equals that when every protein has
    the same number of target states. Success is coverage at ``SUCCESS_THRESHOLD`` (3 Å).
    """
    best = np.asarray(best_rmsd, dtype=np.float64).ravel()
    if best.size == 0:
        raise ValueError("coverage needs at least one target state's best-sample RMSD")
    return (best[None, :] < np.asarray(thresholds, dtype=np.float64)[:, None]).mean(axis=1)


def coverage_auc(best_rmsd: np.ndarray, max_threshold: float = 10.0) -> float:
    """Area under the coverage curve over 0 ≤ r ≤ ``max_threshold`` Å, divided by ``max_threshold``: 1 when every
    state is matched exactly, 0 when none is within ``max_threshold``.

    Exact for the step-shaped curve, no threshold grid: state k is covered over (b_k, max_threshold], so the
    area is the mean over states of max(0, 1 − b_k / max_threshold).
    """
    best = np.asarray(best_rmsd, dtype=np.float64).ravel()
    if best.size == 0 or not max_threshold > 0:
        raise ValueError(f"need best-sample RMSDs and a positive max_threshold, got {best.size} and {max_threshold}")
    return float(np.clip(1.0 - best / max_threshold, 0.0, 1.0).mean())
