"""Optimal superposition and RMSD (wrapping ProDy's Kabsch implementation)."""

from __future__ import annotations

import numpy as np
import prody

__all__ = ["optimal_rotation", "superpose", "rmsd", "rmsd_matrix"]


def optimal_rotation(mobile: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation R (3, 3) minimising the RMSD of centred ``mobile @ R.T`` to centred ``target``.

    mobile, target: (N, 3) Å, matched row by row.
    """
    if mobile.shape != target.shape or mobile.ndim != 2 or mobile.shape[1] != 3:
        raise ValueError(f"need two (N, 3) arrays of equal shape, got {mobile.shape} and {target.shape}")
    return prody.calcTransformation(np.asarray(mobile, float), np.asarray(target, float)).getRotation()


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
