"""Rotation augmentation: the 24 rotations of the cube, applied to a map and its reference together.

A model of several proteins places each on its own principal axes (frame.principal_placement), so every
training protein is seen in one orientation only, and a new protein's principal axes need not line up its
domains the way the training proteins' did. Rotating each training example at random teaches the encoder
to read a map whatever its orientation relative to the grid.

Only the rotations that map the voxel grid onto itself are used: they are permutations and reversals of
the voxel axes, exact (no interpolation blur, which would make rotated maps systematically smoother than
unrotated ones and than the maps sampling renders) and free. The grid's voxel centres are
(i − D//2)·apix, so the cube's centre, the point these rotations fix, is ((D − 1)/2 − D//2)·apix on each
axis (−apix/2 for even D); the reference coordinates are rotated about that point, which keeps them on
the same voxels as the rotated map. A reference centred on the origin thus moves by up to apix per axis;
harmless jitter, well inside the box margin.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import torch

from cryosampler.model.featurize import ProteinFeatures
from cryosampler.io.grid import MapGrid

__all__ = ["CUBE_ROTATIONS", "grid_centre", "rotate_volume", "rotate_coords", "rotate_examples"]


def _cube_rotations() -> torch.Tensor:
    """(24, 3, 3) float64: the signed permutation matrices of determinant +1, identity first."""
    rotations = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            matrix = np.zeros((3, 3))
            matrix[np.arange(3), perm] = signs
            if np.linalg.det(matrix) > 0:
                rotations.append(matrix)
    return torch.tensor(np.stack(rotations))


CUBE_ROTATIONS = _cube_rotations()


def grid_centre(grid: MapGrid) -> float:
    """The point (c, c, c) that rotations of the voxel grid fix: c = ((D − 1)/2 − D//2)·apix, Å."""
    return ((grid.size - 1) / 2 - grid.size // 2) * grid.apix


def rotate_volume(volume: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """The map turned by ``rotation``: V'(R u) = V(u) about the cube's centre, exactly (voxels moved, not
    interpolated).

    volume: (D, D, D), axes (x, y, z); rotation: (3, 3), one of :data:`CUBE_ROTATIONS`. Returns (D, D, D).
    """
    rotation = rotation.detach().cpu().double()
    if not any(torch.equal(rotation, r) for r in CUBE_ROTATIONS):  # a reflection would mirror the protein
        raise ValueError(f"rotation must be one of the 24 CUBE_ROTATIONS (a signed permutation matrix of "
                         f"determinant +1), got {rotation.tolist()}")
    # V'(u) = V(Rᵀ u): output axis d reads input axis a = perm[d], reversed where R[d, a] = −1.
    perm = rotation.abs().argmax(dim=1).tolist()
    turned = volume.permute(*perm)
    flips = [d for d in range(3) if rotation[d, perm[d]] < 0]
    return turned.flip(flips) if flips else turned


def rotate_coords(coords: torch.Tensor, rotation: torch.Tensor, grid: MapGrid) -> torch.Tensor:
    """Coordinates turned with :func:`rotate_volume`'s map: R (x − c) + c with c = :func:`grid_centre`.

    coords: (N, 3) Å in the grid's frame; rotation (3, 3). Returns (N, 3), dtype of ``coords``.
    """
    centre = grid_centre(grid)
    return ((coords - centre) @ rotation.to(coords).T) + centre


def rotate_examples(volumes: torch.Tensor, proteins: list[ProteinFeatures], grid: MapGrid,
                    generator: torch.Generator) -> tuple[torch.Tensor, list[ProteinFeatures]]:
    """Each map and its protein's reference turned together by a rotation of :data:`CUBE_ROTATIONS` drawn
    uniformly from ``generator`` (one draw per example).

    volumes: (B, D, D, D) on ``generator``'s device; proteins: B features in the grid's frame. Returns the
    turned maps (B, D, D, D) and proteins with turned ``ref_coords`` (every other feature is unchanged: none
    depends on the orientation).
    """
    draws = torch.randint(len(CUBE_ROTATIONS), (len(volumes),), generator=generator, device=generator.device)
    turns = CUBE_ROTATIONS[draws.cpu()]
    turned = torch.stack([rotate_volume(v, r) for v, r in zip(volumes, turns)])
    return turned, [dataclasses.replace(p, ref_coords=rotate_coords(p.ref_coords, r, grid))
                    for p, r in zip(proteins, turns)]
