"""The cubic grid every map of the pipeline lives on: its size, voxel size and the resolution maps are rendered at.

A definition shared by the map files (:mod:`cryosampler.io.mrc`), the forward model
(:mod:`cryosampler.physics.render`) and the model, so it sits at the bottom of the pipeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["MapGrid", "crop_around", "BOX_MARGIN", "grid_for"]

# Å kept between the atoms (at their farthest from the box centre, in any orientation) and the box's last voxel
# centre: room for the maps' conformations beyond the reference's, and for the renderer's Gaussians.
BOX_MARGIN = 8.0
_FINE_APIX = 2.0  # Å, the paper's voxel (A.4), kept up to _MAX_FINE_SIZE voxels per side
_MAX_FINE_SIZE = 128
_SIZE_STEP = 16  # sides are multiples of this: every encoder stage halves the grid
_APIX_STEP = 0.5  # Å, coarser voxels come in steps of this
_RESOLUTION_VOXELS = 4.0  # render resolution in voxels: the paper's 8 Å at 2 Å


@dataclass(frozen=True)
class MapGrid:
    """Cubic map grid and target resolution; voxel (i, j, k) centred at ((i, j, k) - D//2) * apix Å."""

    size: int = 64  # D voxels per side (paper A.4)
    apix: float = 2.0  # Å per voxel (paper A.4)
    resolution: float = 8.0  # Å; sets the Gaussian width w = resolution / π (paper A.4, EMAN2 pdb2mrc)

    def __post_init__(self):
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 1:
            raise ValueError(f"MapGrid.size must be a positive int (voxels per side), got {self.size!r}")
        for name in ("apix", "resolution"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"MapGrid.{name} must be a positive finite number of Å, got {value!r}")

    @property
    def box_length(self) -> float:
        """Edge of the box, D * apix (Å)."""
        return self.size * self.apix

    @property
    def half_range(self) -> float:
        """Distance (Å) from the box centre to the nearer last voxel centre, min(D//2, D - 1 - D//2) * apix: how far
        atoms centred in the box may reach in any direction."""
        return _half_range(self.size, self.apix)

    @property
    def width(self) -> float:
        """Gaussian width w = resolution / π (Å); each atom adds Z exp(-r² / w²)."""
        return self.resolution / math.pi

    @property
    def origin(self) -> tuple[float, float, float]:
        """Centre of voxel (0, 0, 0), (x, y, z) in Å: -(D//2) * apix on every axis."""
        start = -(self.size // 2) * self.apix
        return (start, start, start)

    def axis(self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
        """Voxel-centre coordinates along one axis, (D,) in Å: (i - D//2) * apix for i = 0 … D-1."""
        return (torch.arange(self.size, dtype=dtype, device=device) - self.size // 2) * self.apix


def crop_around(volume: np.ndarray, grid: MapGrid, coords: np.ndarray,
                margin: float) -> tuple[np.ndarray, MapGrid, np.ndarray]:
    """The cube of ``volume`` that holds ``coords`` with ``margin`` Å to spare on every side, as a grid of its own:
    what a fit of atoms into a map needs to render, at a fraction of the whole box's cost.

    volume : (D, D, D) on ``grid``; coords : (N, 3) Å in the grid's frame. Returns (the cube (d, d, d), a view of
    ``volume``; its grid, same apix and resolution; shift (3,) Å: a point x of the grid's frame is x − shift in
    the cube's). The cube is the whole volume when it would not be smaller, and stays inside it.
    """
    coords = np.asarray(coords, np.float64)
    lo = np.floor((coords.min(0) - margin) / grid.apix).astype(int) + grid.size // 2  # (3,) voxel indices
    hi = np.ceil((coords.max(0) + margin) / grid.apix).astype(int) + grid.size // 2
    size = int((hi - lo).max()) + 1
    if size >= grid.size:
        return np.asarray(volume), grid, np.zeros(3)
    start = np.clip(lo - (size - (hi - lo + 1)) // 2, 0, grid.size - size)  # the atoms centred in the cube
    cube = np.asarray(volume)[start[0]:start[0] + size, start[1]:start[1] + size, start[2]:start[2] + size]
    shift = (start + size // 2 - grid.size // 2) * grid.apix
    return cube, MapGrid(size=size, apix=grid.apix, resolution=grid.resolution), shift.astype(np.float64)


def _half_range(size: int, apix: float) -> float:
    """Distance (Å) from the box centre to the nearer last voxel centre: min(D//2, D - 1 - D//2) apix."""
    return min(size // 2, size - 1 - size // 2) * apix


def grid_for(radius: float, box: int | None = None, apix: float | None = None) -> MapGrid:
    """The model grid for atoms that lie within ``radius`` Å of the box centre, in any orientation, with
    :data:`BOX_MARGIN` Å to spare.

    Without ``box`` or ``apix``: the paper's 64³ × 2 Å when it holds them (every grid trained before is this one);
    else 2 Å voxels and the smallest side, a multiple of 16, up to 128; beyond that 128 voxels of the smallest
    voxel size, a multiple of 0.5 Å, that holds them. ``box`` (voxels per side, a multiple of 16) or ``apix`` (Å),
    when given, is kept and the other chosen (voxels no finer than 2 Å when only ``box`` is given); both given are
    taken as they are. Maps are rendered at 4 voxels' resolution, at least 8 Å. A ValueError names ``--box`` /
    ``--apix`` when what was given cannot hold the atoms.
    """
    need = float(radius) + BOX_MARGIN
    if box is not None and (isinstance(box, bool) or not isinstance(box, int) or box < _SIZE_STEP
                            or box % _SIZE_STEP):
        raise ValueError(f"--box {box}: give voxels per side as a multiple of {_SIZE_STEP} (64, 80, 96, …)")
    if apix is not None and not (math.isfinite(apix) and apix > 0):
        raise ValueError(f"--apix {apix}: give the voxel size as a positive number of Å")
    if box is None:
        step = apix if apix is not None else _FINE_APIX
        size = max(64, _SIZE_STEP * math.ceil((2.0 * need / step + 2.0) / _SIZE_STEP))
        if apix is None and size > _MAX_FINE_SIZE:
            size = _MAX_FINE_SIZE
            step = _APIX_STEP * math.ceil(need / _half_range(size, 1.0) / _APIX_STEP)
        box, apix = size, step
    elif apix is None:
        apix = max(_FINE_APIX, _APIX_STEP * math.ceil(need / _half_range(box, 1.0) / _APIX_STEP))
    grid = MapGrid(size=int(box), apix=float(apix), resolution=max(8.0, _RESOLUTION_VOXELS * float(apix)))
    if grid.half_range < need:
        raise ValueError(f"--box {box} × --apix {apix:g} Å holds atoms up to {grid.half_range:.0f} Å from the "
                         f"centre, the reference reaches {radius:.0f} Å (+ {BOX_MARGIN:g} Å margin); leave them out "
                         "to have the grid chosen, or enlarge them")
    return grid
