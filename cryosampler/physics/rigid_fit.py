"""The rigid-body fit of atoms into a map: the local optimum, from a given placement, of the map–model correlation
over the 6 rigid-body parameters (as ChimeraX ``fitmap`` finds it), which ingestion's placement check uses.

Under a rigid motion T that keeps the atoms inside the box, the model's rendering F(T x) (``render.py``: each
atom adds Z exp(-r² / w²)) keeps its mean and norm, so its Pearson r with a map V rises and falls with

    Σ_a Z_a S(T x_a),   S = (V - mean V) ∗ exp(-r² / w²),

the map smoothed once by the renderer's own Gaussian and read at the moved atoms. One smoothing and then N
interpolated values per step replace a render per step, and the optimum is the correlation's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage, optimize

from cryosampler.io.grid import MapGrid
from cryosampler.physics.frame import RigidTransform

__all__ = ["RigidFit", "rigid_fit"]

# L-BFGS iterations: a fit from a placement a few Å or degrees off converges in a few dozen.
MAX_ITERATIONS = 200


@dataclass(frozen=True)
class RigidFit:
    """Where a rigid-body fit takes a model: the motion from its given placement and its size."""

    transform: RigidTransform  # given → fitted coordinates, Å, in the grid's frame
    shift: float  # Å, how far the centroid moves
    turn: float  # degrees, the angle of the rotation (about the centroid)
    displacement: float  # Å, root mean square of the atoms' moves: √(shift² + what the turn adds)


def _skew(w: torch.Tensor) -> torch.Tensor:
    """(3,) → (3, 3), the matrix of w × ·."""
    zero = torch.zeros((), dtype=w.dtype)
    return torch.stack([torch.stack([zero, -w[2], w[1]]), torch.stack([w[2], zero, -w[0]]),
                        torch.stack([-w[1], w[0], zero])])


def rigid_fit(volume: np.ndarray, coords: np.ndarray, atomic_numbers: np.ndarray, grid: MapGrid) -> RigidFit:
    """The rigid motion, from the given placement, to the nearest maximum of the map–model correlation.

    Parameters
    ----------
    volume : (D, D, D) float, axes (x, y, z), on ``grid``; any units and offset (not constant).
    coords : (N, 3) Å, the model in the grid's frame; atomic_numbers : (N,) its Z.
    grid : the grid of ``volume``; the model is compared at grid.resolution (module docstring).

    The motion turns the model about its centroid by a rotation vector and moves it; L-BFGS maximises the
    module docstring's score from zero motion, with both parameters in Å (the rotation vector times the
    model's radius of gyration) so that a step turns and shifts atoms alike. The map is read trilinearly.
    """
    volume = np.asarray(volume, np.float64)
    if volume.shape != (grid.size,) * 3:
        raise ValueError(f"volume must be {(grid.size,) * 3} to match the grid, got {volume.shape}")
    spread = volume.std()
    if not spread > 0:
        raise ValueError("the map is constant; no model can be fitted into it")
    sigma = grid.width / math.sqrt(2.0) / grid.apix  # voxels: exp(-r² / w²) is a Gaussian of σ = w / √2
    smoothed = ndimage.gaussian_filter((volume - volume.mean()) / spread, sigma, mode="constant")
    smoothed = torch.from_numpy(smoothed)[None, None]  # (1, 1, D, D, D)

    coords = np.asarray(coords, np.float64)
    if coords.ndim != 2 or coords.shape[1] != 3 or np.shape(atomic_numbers) != (len(coords),):
        raise ValueError(f"need coords (N, 3) and atomic_numbers (N,), got {coords.shape} and "
                         f"{np.shape(atomic_numbers)}")
    centroid = coords.mean(0)
    arms = torch.from_numpy(coords - centroid)  # (N, 3) Å
    radius = max(float(arms.square().sum(1).mean().sqrt()), 1.0)  # Å per radian
    weights = torch.as_tensor(np.asarray(atomic_numbers, np.float64))
    weights = weights / weights.sum()  # (N,)
    # Grid frame (Å) → grid_sample's [-1, 1] per axis (align_corners: ±1 are the first and last voxel centres).
    scale = 2.0 / ((grid.size - 1) * grid.apix)
    offset = torch.tensor(np.asarray(grid.origin, np.float64))

    def rotation(p: torch.Tensor) -> torch.Tensor:
        return torch.linalg.matrix_exp(_skew(p[3:] / radius))

    def negative_score(p: np.ndarray) -> tuple[float, np.ndarray]:
        p = torch.tensor(p, requires_grad=True)  # (6,): shift Å, rotation vector × radius Å
        moved = arms @ rotation(p).T + torch.from_numpy(centroid) + p[:3]  # (N, 3) Å
        unit = (moved - offset) * scale - 1.0
        # grid_sample's last coordinate indexes the last axis (z), so (x, y, z) is passed reversed.
        values = F.grid_sample(smoothed, unit.flip(-1).view(1, 1, 1, -1, 3), mode="bilinear",
                               padding_mode="zeros", align_corners=True).view(-1)  # (N,)
        score = -(weights * values).sum()
        score.backward()
        return score.item(), p.grad.numpy()

    p = optimize.minimize(negative_score, np.zeros(6), jac=True, method="L-BFGS-B",
                          options={"maxiter": MAX_ITERATIONS}).x
    turn = rotation(torch.from_numpy(p)).numpy()
    transform = RigidTransform(turn, centroid - centroid @ turn.T + p[:3])
    displacement = float(np.sqrt(np.square(transform.apply(coords) - coords).sum(1).mean()))
    return RigidFit(transform, float(np.linalg.norm(p[:3])), float(np.degrees(np.linalg.norm(p[3:]) / radius)),
                    displacement)
