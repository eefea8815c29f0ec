"""MRC map I/O (wrapping mrcfile): volumes indexed (x, y, z), headers that place voxels in Å.

A volume ``V[i, j, k]`` (axes x, y, z) is stored as mrcfile's ``data[k, j, i]`` (MAPC, MAPR, MAPS = 1, 2, 3),
with voxel size ``apix``, header ORIGIN = ``origin`` (Å) and NXSTART = NYSTART = NZSTART = 0, so ChimeraX,
EMAN2 and RELION, whichever of ORIGIN or N?START they read, all put voxel (i, j, k) at
``origin + (i, j, k) * apix`` Å. For maps rendered by ``cryosampler.physics.render`` the origin is ``grid.origin``.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import mrcfile
import numpy as np
import torch

from cryosampler.io.files import atomic_path
from cryosampler.io.grid import MapGrid

__all__ = ["write_mrc", "write_map_file", "read_mrc", "write_image_stack", "read_image_stack"]


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

    write_map_file(path, volume, grid.apix, origin)


def write_map_file(path: str | os.PathLike, volume: np.ndarray, apix: float, origin=(0.0, 0.0, 0.0),
                   axes: tuple[int, int, int] = (1, 2, 3), start=(0, 0, 0)) -> None:
    """Write ``volume`` (X, Y, Z) float32, axes (x, y, z), as any program might: stored in axis order ``axes``
    (MAPC, MAPR, MAPS, a permutation of 1, 2, 3), header ORIGIN ``origin`` (x, y, z) Å and start indices
    ``start`` (x, y, z) voxels, gzip-compressed when the name ends in ``.gz``. :func:`read_mrc` reads it back
    as ``volume`` with voxel (i, j, k) at ORIGIN + (i, j, k) apix, or at (start + (i, j, k)) apix when ORIGIN
    is zero. Written to a temporary name and renamed, like :func:`write_mrc`.
    """
    path = Path(path)
    volume = np.asarray(volume, np.float32)
    column, row, section = (a - 1 for a in axes)
    stored = np.ascontiguousarray(volume.transpose(section, row, column))
    compression = "gzip" if path.name.lower().endswith(".gz") else None
    with atomic_path(path) as tmp, mrcfile.new(tmp, compression=compression) as mrc:
        mrc.set_data(stored)
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = axes
        # MX, MY, MZ and the cell are along x, y, z whatever the storage order.
        mrc.header.mx, mrc.header.my, mrc.header.mz = volume.shape
        mrc.voxel_size = apix
        mrc.header.origin = tuple(float(o) for o in origin)
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = start[column], start[row], start[section]


def _starts_gzip(path: Path) -> bool:
    """Whether the file begins with gzip's magic bytes."""
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def read_mrc(path: str | os.PathLike) -> tuple[np.ndarray, float, tuple[float, float, float]]:
    """Read an MRC/CCP4 map → (volume (D_x, D_y, D_z) float32, axes (x, y, z); apix Å; origin (x, y, z) Å).

    Reads ``.mrc``, ``.map``, ``.ccp4`` and gzip- or bzip2-compressed files (``.mrc.gz``; mrcfile detects the
    compression from the content, not the name). The stored [section, row, column] array is transposed to
    (x, y, z) by the header's axis order MAPC, MAPR, MAPS (any permutation of 1, 2, 3; RELION and cryoSPARC
    write 1, 2, 3, CCP4 programs often 3, 2, 1 or 2, 1, 3).

    ``origin`` is the position of the centre of voxel (0, 0, 0): the header ORIGIN if any of its components is
    non-zero, otherwise (NCSTART, NRSTART, NSSTART) * apix permuted to (x, y, z) (older CCP4-style maps, which
    leave ORIGIN zero and place the box by its start indices). ORIGIN wins when both are set because MRC2014
    defines it as the position of the first voxel for EM maps, ChimeraX reads it that way, and RELION and
    cryoSPARC write it; adding both would shift such maps twice.

    Voxels must be cubic: a non-cubic map is refused (resample it to cubic voxels, e.g. ChimeraX
    ``volume resample``), as is a missing or zero voxel size, and a map with NaN or infinite voxels (every
    later sum would be NaN). Subnormal values are read as 0.
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
    except (ValueError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        # A truncated or corrupt (compressed) file: EOFError, zlib.error or BadGzipFile (an OSError without a
        # file name) would otherwise escape as a traceback or name the wrong file.
        if path.name.lower().endswith(".gz") and not _starts_gzip(path):
            # mrcfile reads it as an uncompressed map, and would report what it misses there.
            raise ValueError(f"{path}: not a gzip file, although its name ends in .gz; compress the map with gzip, "
                             "or give it its own name (.mrc, .map, .ccp4)") from err
        raise ValueError(f"{path}: not a readable MRC map ({str(err) or type(err).__name__})") from err
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a 3D volume, got data of shape {data.shape}")
    if sorted(axes) != [1, 2, 3]:
        raise ValueError(f"{path}: axis order MAPC, MAPR, MAPS = {axes} is not a permutation of 1, 2, 3; "
                         f"the header is damaged, resave the map")
    voxel = (float(voxel.x), float(voxel.y), float(voxel.z))
    if not all(math.isfinite(v) and v > 0 for v in voxel):
        raise ValueError(f"{path}: voxel size is missing or zero ({voxel[0]}, {voxel[1]}, {voxel[2]} Å); set it "
                         f"in the header, e.g. ChimeraX 'volume #1 voxelSize 1.06' then 'save'")
    apix = voxel[0]
    if not (np.isclose(voxel[1], apix) and np.isclose(voxel[2], apix)):
        raise ValueError(f"{path}: voxels must be cubic, got {voxel[0]}, {voxel[1]}, {voxel[2]} Å; resample it, "
                         f"e.g. ChimeraX 'volume resample #1 spacing {min(voxel)}'")
    bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    if bad:
        raise ValueError(f"{path}: the map has {bad:,} NaN/infinite voxels of {data.size:,}; replace them (e.g. by 0, "
                         "with numpy.nan_to_num) and retry")
    # Values below the smallest normal float carry no density but make every later operation on them slow
    # on x86 CPUs (subnormal arithmetic; see render.py): read them as zero.
    data[np.abs(data) < np.finfo(np.float32).tiny] = 0.0
    # Stored axis 2 (columns) runs along spatial axis MAPC, axis 1 (rows) along MAPR, axis 0 (sections) along
    # MAPS; N?START are the start indices of columns, rows and sections, in that order.
    stored_axis = {axes[0] - 1: 2, axes[1] - 1: 1, axes[2] - 1: 0}
    volume = data.transpose([stored_axis[d] for d in range(3)])  # (x, y, z)
    if any(header_origin):
        origin = header_origin
    else:
        crs_start = {axes[0] - 1: start[0], axes[1] - 1: start[1], axes[2] - 1: start[2]}
        origin = tuple(crs_start[d] * apix for d in range(3))
    return np.ascontiguousarray(volume), apix, origin


def write_image_stack(path: str | os.PathLike, images: np.ndarray, apix: float) -> None:
    """Write ``images`` (B, D, D) float32, indexed [image, y, x], as an MRC image stack (``.mrcs``, ISPG 0, as
    RELION and cryoDRGN read particles) of pixel size ``apix`` Å; written to a temporary name and renamed."""
    path = Path(path)
    images = np.asarray(images, np.float32)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"{path}: need square images (B, D, D), got {images.shape}")
    with atomic_path(path) as tmp, mrcfile.new(tmp) as mrc:
        mrc.set_data(images)
        mrc.set_image_stack()
        mrc.voxel_size = apix


def read_image_stack(path: str | os.PathLike, count: int | None = None) -> np.ndarray:
    """The first ``count`` (default all) images of an MRC image stack (``.mrcs``): (B, D, D) float32, [y, x]."""
    path = Path(path)
    try:
        with mrcfile.mmap(path, mode="r") as mrc:
            data = np.asarray(mrc.data)
            return np.array(data[:count] if data.ndim == 3 else data[None], dtype=np.float32)
    except (ValueError, OSError) as err:
        raise ValueError(f"{path}: not a readable MRC image stack ({err})") from err
