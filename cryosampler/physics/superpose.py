"""Optimal superposition and RMSD (Kabsch).

The rotation is computed as ProDy's ``calcTransformation`` computes it, operation for operation (SVD of the
covariance matrix by scipy, reflection removed by the determinant's sign), so results are bit-identical to the
ProDy call this module used to make; ProDy itself is wrapped only in :mod:`cryosampler.physics.nma`.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

__all__ = ["optimal_rotation", "superpose", "rmsd", "rmsd_matrix", "pairwise_rmsd"]


def optimal_rotation(mobile: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation R (3, 3) minimising the RMSD of centred ``mobile @ R.T`` to centred ``target``.

    mobile, target: (N, 3) Å, matched row by row.
    """
    if mobile.shape != target.shape or mobile.ndim != 2 or mobile.shape[1] != 3:
        raise ValueError(f"need two (N, 3) arrays of equal shape, got {mobile.shape} and {target.shape}")
    mobile, target = np.asarray(mobile, float), np.asarray(target, float)
    covariance = np.dot((mobile - mobile.mean(0)).T, target - target.mean(0))  # (3, 3)
    u, _, vh = linalg.svd(covariance)
    flip = np.diag([1, 1, np.sign(linalg.det(np.dot(u, vh)))])  # a rotation, never a reflection
    return np.dot(vh.T, np.dot(flip, u.T))


def superpose(mobile: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``mobile`` (N, 3) moved onto ``target`` (N, 3) by the optimal rigid motion; (N, 3) Å."""
    rotation = optimal_rotation(mobile, target)
    return (mobile - mobile.mean(0)) @ rotation.T + target.mean(0)


def rmsd(a: np.ndarray, b: np.ndarray) -> float:
    """RMSD (Å) between matched coordinate sets (N, 3) after optimal superposition."""
    return float(np.sqrt(np.mean(np.sum((superpose(a, b) - b) ** 2, axis=-1))))


def rmsd_matrix(samples: np.ndarray, states: np.ndarray) -> np.ndarray:
    """samples (S, N, 3), states (K, N, 3) → (S, K) RMSDs (Å) after optimal superposition."""
    return np.array([[rmsd(x, y) for y in states] for x in samples])


def pairwise_rmsd(coords: np.ndarray, block: int = 64) -> np.ndarray:
    """RMSD (Å) of every pair of conformations after optimal superposition: coords (S, N, 3) → (S, S).

    ``block`` rows of pairs at a time (Kabsch through the singular values of each pair's covariance: the
    minimal mean squared deviation is (|a|² + |b|² − 2 (s₁ + s₂ ± s₃)) / N after centring, the sign that of
    det(U Vᵀ)), so memory stays O(S²) for the result; the same values as :func:`rmsd_matrix` (to rounding),
    fast enough for thousands of samples.
    """
    x = np.asarray(coords, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"need conformations (S, N, 3), got {x.shape}")
    x = x - x.mean(axis=1, keepdims=True)
    norms = np.einsum("anj,anj->a", x, x)  # (S,)
    out = np.empty((len(x), len(x)))
    for start in range(0, len(x), block):
        rows = x[start:start + block]
        covariance = np.einsum("ani,bnj->abij", rows, x)  # (block, S, 3, 3)
        u, s, vh = np.linalg.svd(covariance)
        s[..., 2] *= np.sign(np.linalg.det(u @ vh))  # a rotation, never a reflection
        msd = (norms[start:start + block, None] + norms[None, :] - 2 * s.sum(-1)) / x.shape[1]
        out[start:start + block] = np.sqrt(np.clip(msd, 0.0, None))
    return out
