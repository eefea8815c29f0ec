"""MRC map I/O (wrapping mrcfile): volumes indexed (x, y, z), headers that place voxels in Å.

A volume ``V[i, j, k]`` (axes x, y, z) is stored as mrcfile's ``data[k, j, i]`` (MAPC, MAPR, MAPS = 1, 2, 3),
with voxel size ``apix``, header ORIGIN = ``origin`` (Å) and NXSTART = NYSTART = NZSTART = 0, so ChimeraX,
EMAN2 and RELION, whichever of ORIGIN or N?START they read, all put voxel (i, j, k) at
``origin + (i, j, k) * apix`` Å. For maps rendered by ``cryosampler.render`` the origin is ``grid.origin``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import mrcfile
import numpy as np
import torch

from cryosampler.files import atomic_path
from cryosampler.render import MapGrid

__all__ = ["write_mrc", "read_mrc"]


def write_mrc(path: str | os.PathLike, volume: np.ndarray | torch.Tensor, grid: MapGrid,
              origin: tuple[float, float, float] | None = None) -> None:
    """Write ``volume`` (D, D, D), axes (x, y, z), D = grid.size, as a float32 MRC map of voxel size grid.apix.

    origin : (x, y, z) Å of the centre of voxel (0, 0, 0); default ``grid.origin`` (maps of centred
        structures). The file is written to a temporary name and renamed, so a failure leaves no partial file
        and an existing file at ``path`` untouched.
    """
    path = Path(path)
    if torch.is_tensor(volume):
        volume = volume.detach().cpu().numpy()
    volume = np.asarray(volume)
    D = grid.size
    if volume.shape != (D, D, D):
        raise ValueError(f"{path}: volume must be ({D}, {D}, {D}) to match the grid, got {volume.shape}")
    if not np.isfinite(volume).all():
        raise ValueError(f"{path}: volume has non-finite values")
    origin = grid.origin if origin is None else tuple(float(o) for o in origin)
    if len(origin) != 3 or not all(math.isfinite(o) for o in origin):
        raise ValueError(f"{path}: origin must be three finite Å values (x, y, z), got {origin}")

    with atomic_path(path) as tmp, mrcfile.new(tmp) as mrc:
        mrc.set_data(np.ascontiguousarray(volume.transpose(2, 1, 0), dtype=np.float32))  # (z, y, x)
        mrc.voxel_size = grid.apix
        mrc.header.origin = origin
        mrc.header.nxstart = mrc.header.nystart = mrc.header.nzstart = 0


def read_mrc(path: str | os.PathLike) -> tuple[np.ndarray, float, tuple[float, float, float]]:
    """Read an MRC map → (volume (D_x, D_y, D_z) float32, axes (x, y, z); apix Å; origin (x, y, z) Å).

    ``origin`` is the position of the centre of voxel (0, 0, 0): the header ORIGIN, or N?START * apix
    for files whose ORIGIN is zero (older CCP4-style maps). Subnormal values are read as 0.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such MRC file")
    try:
        with mrcfile.open(path, mode="r") as mrc:
            data = np.array(mrc.data, dtype=np.float32)
            header = mrc.header
            voxel = mrc.voxel_size
            axes = (int(header.mapc), int(header.mapr), int(header.maps))
            header_origin = tuple(float(header.origin[a]) for a in "xyz")
            start = (int(header.nxstart), int(header.nystart), int(header.nzstart))
    except ValueError as err:
        raise ValueError(f"{path}: not a readable MRC map ({err})") from err
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a 3D volume, got data of shape {data.shape}")
    if axes != (1, 2, 3):
        raise ValueError(f"{path}: axis order MAPC, MAPR, MAPS = {axes} is not supported; resave it with 1, 2, 3")
    apix = float(voxel.x)
    if not (apix > 0 and np.isclose(voxel.y, apix) and np.isclose(voxel.z, apix)):
        raise ValueError(f"{path}: voxels must be cubic with positive size, got {voxel.x}, {voxel.y}, {voxel.z} Å")
    # Values below the smallest normal float carry no density but make every later operation on them slow
    # on x86 CPUs (subnormal arithmetic; see render.py): read them as zero.
    data[np.abs(data) < np.finfo(np.float32).tiny] = 0.0
    if any(header_origin):
        origin = header_origin
    else:
        origin = tuple(s * apix for s in start)
    return np.ascontiguousarray(data.transpose(2, 1, 0)), apix, origin
