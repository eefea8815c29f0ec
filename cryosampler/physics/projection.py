"""Projection of an atomic model to 2-D particle images: the line integral of the renderer's density
(:mod:`cryosampler.physics.render`) along z after a rotation, computed from the atoms without a 3-D map.

Each atom adds ``Z exp(-r² / w²)`` (w = resolution / π) to the density; its integral along z is
``√π w Z exp(-((x − x_a)² + (y − y_a)²) / w²)``, separable in x and y. An atom at r (Å, from the box centre) lands
at (x, y) = the first two components of R r, R the particle's rotation: the convention of cryoDRGN, which reads an
image's Fourier transform on the central slice ``k @ R`` of the volume's (``cryodrgn.lattice``), and so the
rotation ``cryodrgn.utils.R_from_relion`` makes of the STAR file's Euler angles (:mod:`cryosampler.io.particles`).
Images are indexed [y, x], pixel (i, j) centred at ((j − D//2) apix, (i − D//2) apix) Å.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["random_rotations", "project_atoms"]


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rotations drawn uniformly over SO(3) (unit quaternions from a 4-D normal): (n, 3, 3) float64."""
    q = rng.standard_normal((n, 4))
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], axis=1)


def project_atoms(coords: np.ndarray, weights: np.ndarray, rotations: np.ndarray, size: int, apix: float,
                  resolution: float, batch: int = 64) -> np.ndarray:
    """Projections of atoms ``coords`` (B, N, 3) Å, relative to the box centre, each rotated by ``rotations``
    (B, 3, 3): (B, size, size) float32 images, [y, x].

    weights: (N,) the atoms' scattering weights (atomic numbers, as the renderer's). resolution: Å; sets the
    Gaussian width w = resolution / π. Computed ``batch`` images at a time (memory B·N·size floats).
    """
    coords, rotations = np.asarray(coords, np.float64), np.asarray(rotations, np.float64)
    if coords.ndim != 3 or coords.shape[-1] != 3 or rotations.shape != (len(coords), 3, 3):
        raise ValueError(f"need coords (B, N, 3) and rotations (B, 3, 3), got {coords.shape} and {rotations.shape}")
    w = resolution / math.pi
    axis = torch.tensor((np.arange(size) - size // 2) * apix)
    z = torch.as_tensor(np.asarray(weights, np.float64)) * (math.sqrt(math.pi) * w)
    images = np.empty((len(coords), size, size), np.float32)
    for start in range(0, len(coords), batch):
        stop = min(start + batch, len(coords))
        moved = torch.einsum("bij,bnj->bni", torch.tensor(rotations[start:stop]), torch.tensor(coords[start:stop]))
        gx = torch.exp(-((moved[..., 0:1] - axis) / w) ** 2)  # (b, N, size)
        gy = torch.exp(-((moved[..., 1:2] - axis) / w) ** 2)
        images[start:stop] = torch.einsum("n,bny,bnx->byx", z, gy, gx).numpy()
    return images
