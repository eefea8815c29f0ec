"""How alike two maps are: Pearson's correlation over voxels, the measure ingestion's fit check, the read-out's
report and the notebooks' map comparisons share; :func:`pearson` is the same r in torch, differentiable, for the
fits that maximise it (``refine``, ``physics.nma_fit``)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["map_correlation", "pearson"]


def map_correlation(maps_a: np.ndarray, maps_b: np.ndarray) -> np.ndarray:
    """Pearson correlation of voxel values between every pair of maps.

    Parameters
    ----------
    maps_a : (S, D, D, D)
    maps_b : (K, D, D, D), the same grid

    Returns
    -------
    (S, K) float64 in [-1, 1]

    Raises
    ------
    ValueError
        Grids of different shape, or a constant map (its correlation is undefined).
    """
    a, b = np.asarray(maps_a, dtype=np.float64), np.asarray(maps_b, dtype=np.float64)
    if a.ndim != 4 or b.ndim != 4 or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"need maps (S, D, D, D) and (K, D, D, D) on the same grid, got {a.shape} and {b.shape}")
    # Centre and scale each map to unit norm; the dot product is then Pearson's r.
    unit = []
    for name, maps in (("maps_a", a), ("maps_b", b)):
        flat = maps.reshape(len(maps), -1)
        flat = flat - flat.mean(axis=1, keepdims=True)  # (S, D³)
        norms = np.linalg.norm(flat, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError(f"{name}[{int(np.flatnonzero(norms == 0)[0])}] is constant; its correlation is undefined")
        unit.append(flat / norms)
    return np.clip(unit[0] @ unit[1].T, -1.0, 1.0)


def pearson(volume: torch.Tensor, rendered: torch.Tensor) -> torch.Tensor:
    """Pearson r of voxel values of each map of ``rendered`` with ``volume``, differentiable in both.

    volume : (D, D, D) or (B, D, D, D); rendered : (B, D, D, D), the same grid. Returns (B,), in [-1, 1];
    :func:`map_correlation` is the same r in float64 numpy, with the checks. A constant map gives NaN.
    """
    b = rendered.reshape(len(rendered), -1)  # (B, D³)
    a = volume.reshape(-1 if volume.ndim == 4 else 1, b.shape[1])  # (B or 1, D³)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
