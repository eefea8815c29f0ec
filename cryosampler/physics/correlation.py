"""How alike two maps are: Pearson's correlation over voxels, the measure ingestion's fit check, the read-out's
report and the notebooks' map comparisons share; :func:`pearson` is the same r in torch, differentiable, for the
fits that maximise it (``refine``, ``physics.nma_fit``)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from cryosampler.io.grid import MapGrid, crop_around
from cryosampler.io.structure import Structure

__all__ = ["map_correlation", "pearson", "FitTarget", "fit_target"]


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


class FitTarget(NamedTuple):
    """What a fit of atoms into a map works on (:func:`fit_target`)."""

    coords0: np.ndarray  # (N, 3) float64, Å: the start, checked
    target: torch.Tensor  # (d, d, d) float32: the cube of the map around the start
    box: MapGrid  # the cube's own grid, at the map's resolution
    shift: np.ndarray  # as io.grid.crop_around returns it
    weights: torch.Tensor  # (N,) float32: atomic numbers, the renderer's weights


def fit_target(structure: Structure, coords0: np.ndarray, volume: np.ndarray, grid: MapGrid,
               margin: float) -> FitTarget:
    """Check a start and a map for a fit of ``structure``'s atoms into the map, and crop the map around the start
    with ``margin`` Å to spare (io.grid.crop_around). coords0 : (N, 3) Å in the grid's frame, ``structure``'s atom
    order; volume : (D, D, D) on ``grid``. ValueError (one line) for a start of other atoms, a map of another
    shape, or a constant map (no correlation to raise)."""
    coords0 = np.asarray(coords0, np.float64)
    if coords0.shape != (structure.n_atoms, 3):
        raise ValueError(f"coords0 must be ({structure.n_atoms}, 3) like {structure.name}, got {coords0.shape}")
    volume = np.asarray(volume)
    if volume.shape != (grid.size,) * 3:
        raise ValueError(f"volume must be {(grid.size,) * 3} to match the grid, got {volume.shape}")
    if not volume.std() > 0:
        raise ValueError("the map is constant; no model can be fitted into it")
    cube, box, shift = crop_around(volume, grid, coords0, margin)
    return FitTarget(coords0, torch.as_tensor(cube, dtype=torch.float32), box, shift,
                     torch.tensor(structure.atomic_numbers, dtype=torch.float32))
