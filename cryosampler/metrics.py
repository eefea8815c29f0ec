"""Ensemble metrics: the paper's closest-sample RMSD per true state, and coverage/precision beyond it."""

from __future__ import annotations

import numpy as np

from cryosampler.superpose import rmsd_matrix

__all__ = ["closest_sample_rmsd", "state_occupancy", "coverage_metrics", "ensemble_summary"]


def closest_sample_rmsd(rmsds: np.ndarray) -> np.ndarray:
    """The paper's metric: for each true state, the RMSD (Å) of the closest sample.

    rmsds: (S, K) RMSD of sample s to state k (``superpose.rmsd_matrix``) → (K,).
    """
    return rmsds.min(axis=0)


def state_occupancy(rmsds: np.ndarray) -> np.ndarray:
    """Fraction of samples nearer to each state than to the others; rmsds (S, K) → (K,), sums to 1."""
    return np.bincount(rmsds.argmin(axis=1), minlength=rmsds.shape[1]) / rmsds.shape[0]


def coverage_metrics(samples: np.ndarray, states: np.ndarray,
                     thresholds: tuple[float, ...] = (0.5, 1.0, 2.0)) -> dict[str, float]:
    """Recall/precision coverage and matching of an ensemble (Å), samples (S, N, 3), states (K, N, 3).

    COV-R(δ): fraction of states with some sample within δ; MAT-R: mean over states of the min RMSD.
    COV-P(δ): fraction of samples within δ of some state; MAT-P: mean over samples of the min RMSD.
    """
    rmsds = rmsd_matrix(samples, states)  # (S, K)
    out = {"MAT-R": float(rmsds.min(axis=0).mean()), "MAT-P": float(rmsds.min(axis=1).mean())}
    for delta in thresholds:
        out[f"COV-R({delta:g})"] = float((rmsds.min(axis=0) <= delta).mean())
        out[f"COV-P({delta:g})"] = float((rmsds.min(axis=1) <= delta).mean())
    return out


def ensemble_summary(rmsds: np.ndarray) -> dict[str, float]:
    """Closest-sample RMSD (Å) and occupancy of states A and B from rmsds (S, 2) (``superpose.rmsd_matrix``)."""
    closest, occupancy = closest_sample_rmsd(rmsds), state_occupancy(rmsds)
    return {"closest_A": float(closest[0]), "closest_B": float(closest[1]),
            "occupancy_A": float(occupancy[0]), "occupancy_B": float(occupancy[1])}
