"""Map ingestion: a user's map (own voxel size, box, origin) → the model's grid, and the map–model fit check.

A map read by :func:`cryosampler.io.mrc.read_mrc` is a volume (x, y, z) whose voxel (i, j, k) is centred at
``origin + (i, j, k) * apix`` Å in the map's frame, the frame the reference model was fitted in. The model's
grid (``render.MapGrid``) places voxel (i, j, k) at ``((i, j, k) - D//2) * grid.apix`` Å around its own
origin; :func:`resample_to_grid` puts that origin at ``centre`` (map frame, Å) and samples the map there.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
from scipy import ndimage

from cryosampler.io.grid import MapGrid
from cryosampler.io.mrc import read_mrc
from cryosampler.physics.correlation import map_correlation
from cryosampler.physics.degrade import low_pass
from cryosampler.physics.frame import RigidTransform, map_to_model_frame
from cryosampler.physics.render import check_in_box, render_density
from cryosampler.physics.rigid_fit import rigid_fit

__all__ = ["resample_to_grid", "check_contains", "map_model_correlation", "check_placed", "ingest_map", "model_scale",
           "to_model_units", "FIT_THRESHOLD", "MAX_FIT_DISPLACEMENT", "MAX_OUTSIDE_FRACTION"]

# Fit check (check_placed). Pearson r below which the map is taken as not of the reference at all (a fitted
# model at SNR 0.1 stays above).
FIT_THRESHOLD = 0.1
# Pearson r alone cannot tell a misplaced reference from a noisy map, so the reference is also fitted into the
# map as a rigid body from where it is given: a misplaced one moves by its misplacement, while for a map of
# another conformation aligned on the rigid part (as a consensus refinement aligns particles) the fit moves it
# little. Measured as the atoms' RMS move, so that a turn counts by how far it moves atoms, not by its angle
# alone (a turn about the long axis of an elongated protein moves them least). The measurements that set it
# are in docs/design.md, "Measurements behind constants".
MAX_FIT_DISPLACEMENT = 3.0  # Å
# Share of the reference's atoms that may lie outside the map's box: a box that clips a terminus is common, and
# those atoms meet no density and are held by the model's geometry.
MAX_OUTSIDE_FRACTION = 0.02


def resample_to_grid(volume: np.ndarray, apix: float, origin, grid: MapGrid, centre) -> np.ndarray:
    """Resample a map onto ``grid`` with the grid's origin at ``centre`` of the map's frame.

    Parameters
    ----------
    volume : (X, Y, Z) float, axes (x, y, z); voxel (i, j, k) centred at origin + (i, j, k) apix Å.
    apix : voxel size of ``volume``, Å.
    origin : (3,) Å, centre of voxel (0, 0, 0) of ``volume`` in the map's frame.
    grid : the model's grid; voxel (i, j, k) lands at centre + ((i, j, k) - D//2) grid.apix Å.
    centre : (3,) Å, where the model expects the centre of its box, in the map's frame.

    Returns
    -------
    (D, D, D) float32, axes (x, y, z). Voxels of the grid outside the map's box are 0, and so are those whose
    eight nearest map voxels are all exactly 0 (a masked map's solvent stays masked).

    Downsampling (grid.apix > apix) first removes frequencies above the grid's Nyquist, 1 / (2 grid.apix),
    so that nothing aliases. Values are then interpolated by cubic B-splines (order 3): on a map sampled
    near its own Nyquist trilinear interpolation blurs measurably (docs/design.md, "Measurements behind
    constants"). Both spread density into a mask's exact zeros, which the read-out takes as padding, not noise
    (``readout.matched_time``): EMDB maps are often masked, and without this a clean 3.2 Å map read as noisy.
    """
    volume = np.asarray(volume, dtype=np.float64)
    origin, centre = np.asarray(origin, np.float64), np.asarray(centre, np.float64)
    if volume.ndim != 3:
        raise ValueError(f"volume must be (X, Y, Z), got shape {volume.shape}")
    target = centre + (np.arange(grid.size) - grid.size // 2)[:, None] * grid.apix  # (D, 3) Å along x, y, z
    index = (target - origin) / apix  # (D, 3), fractional voxel indices of the map
    inside = [(index[:, d] >= 0) & (index[:, d] <= volume.shape[d] - 1) for d in range(3)]

    # Crop to the part of the map the grid covers (plus a margin for the filter and spline supports) so that
    # large boxes cost only what they contribute.
    margin = int(np.ceil(2 * grid.apix / apix)) + 4
    lo = [max(0, int(np.floor(index[:, d].min())) - margin) for d in range(3)]
    hi = [min(volume.shape[d], int(np.ceil(index[:, d].max())) + margin + 1) for d in range(3)]
    if any(h <= l for l, h in zip(lo, hi)):
        return np.zeros((grid.size,) * 3, np.float32)
    crop = volume[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    occupied = (crop != 0).astype(np.float64)  # before the filter, which fills the exact zeros
    if grid.apix > apix:
        crop = low_pass(crop, apix, 2.0 * grid.apix)

    ii, jj, kk = np.meshgrid(*(index[:, d] - lo[d] for d in range(3)), indexing="ij")
    out = ndimage.map_coordinates(crop, [ii, jj, kk], order=3, mode="nearest")  # (D, D, D)
    # Trilinear weights of the eight nearest map voxels: 0 only where all of them are exactly 0.
    out *= ndimage.map_coordinates(occupied, [ii, jj, kk], order=1, mode="nearest") > 0
    out *= inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]
    return out.astype(np.float32)


def check_contains(coords: np.ndarray, shape, apix: float, origin, source: str, res_nums=None) -> None:
    """Raise ValueError naming ``source`` if more than MAX_OUTSIDE_FRACTION of the atoms ``coords`` (N, 3) Å lie
    outside the map's box; warn (UserWarning, one line) naming how many and their residues if some do.

    The box spans origin to origin + (shape - 1) apix Å per axis (voxel centres), in the map's frame.
    res_nums : (N,) int, optional, the atoms' residue numbers, named in the warning.
    """
    coords = np.asarray(coords, np.float64)
    low = np.asarray(origin, np.float64)
    high = low + (np.asarray(shape) - 1) * apix
    outside = np.any((coords < low) | (coords > high), axis=1)
    if not outside.any():
        return
    count, box = int(outside.sum()), ", ".join(f"{a:.1f} to {b:.1f}" for a, b in zip(low, high))
    if count > MAX_OUTSIDE_FRACTION * len(coords):
        raise ValueError(
            f"{source}: the map does not contain the reference: {count} of {len(coords)} atoms lie outside its box "
            f"({box} Å along x, y, z), more than the {MAX_OUTSIDE_FRACTION:.0%} allowed; use the map the reference "
            f"was fitted into, or a larger box")
    where = "" if res_nums is None else f" (residues {_ranges(np.asarray(res_nums)[outside])})"
    warnings.warn(f"{source}: {count} of {len(coords)} atoms of the reference lie outside the map's box{where}; "
                  "they meet no density there and are held only by the model's geometry", stacklevel=3)


def _ranges(numbers: np.ndarray) -> str:
    """Residue numbers as runs: [1, 2, 3, 7, 9, 10] → "1–3, 7, 9–10"."""
    numbers = np.unique(np.asarray(numbers, np.int64))
    breaks = np.flatnonzero(np.diff(numbers) != 1) + 1
    runs = np.split(numbers, breaks)
    return ", ".join(f"{r[0]}" if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs)


def _render(coords: np.ndarray, atomic_numbers: np.ndarray, grid: MapGrid) -> np.ndarray:
    """(N, 3) Å in the grid's frame → (D, D, D) at grid.resolution; atoms off the grid add only what reaches it."""
    model = torch.as_tensor(np.asarray(coords, np.float64))[None]  # (1, N, 3)
    return render_density(model, torch.as_tensor(np.array(atomic_numbers)), grid, check_bounds=False)[0].numpy()


def map_model_correlation(volume: np.ndarray, coords: np.ndarray, atomic_numbers: np.ndarray, grid: MapGrid,
                          centre, source: str = "map") -> float:
    """Pearson r of an ingested map with the reference rendered on the same grid at grid.resolution.

    volume : (D, D, D) on ``grid`` (as from :func:`resample_to_grid` with the same ``centre``).
    coords : (N, 3) Å, the reference in the map's frame; atomic_numbers : (N,) its Z.
    centre : (3,) Å, the map-frame point at the grid's origin. source names the map in errors.
    """
    model = np.asarray(coords, np.float64) - np.asarray(centre, np.float64)
    check_in_box(torch.as_tensor(model)[None], grid, names=[f"{source}: the reference"],
                 advice="the model's box cannot hold it; choose a larger grid or centre it on the reference")
    return _correlation(volume, model, atomic_numbers, grid)


def _correlation(volume: np.ndarray, model: np.ndarray, atomic_numbers: np.ndarray, grid: MapGrid) -> float:
    """Pearson r of ``volume`` (D, D, D) with atoms ``model`` (N, 3) Å in the grid's frame, rendered."""
    return float(map_correlation(np.asarray(volume)[None], _render(model, atomic_numbers, grid)[None])[0, 0])


def check_placed(volume: np.ndarray, coords: np.ndarray, atomic_numbers: np.ndarray, grid: MapGrid, centre,
                 source: str, probes: bool = True) -> float:
    """Raise ValueError naming ``source`` unless the reference is placed in the ingested map; return its r.

    Refuses if r < FIT_THRESHOLD (a map of something else), or if a rigid-body fit of the reference into the
    map (:func:`cryosampler.physics.rigid_fit.rigid_fit`, from the given placement) moves its atoms by more than
    MAX_FIT_DISPLACEMENT Å RMS: the reference is then not where the map shows it. A map of another conformation
    aligned on the rigid part moves it less (measurements above). ``probes=False`` (``--allow-far-conformation``) keeps
    only the r floor, for maps of a conformation far from the reference's superposed on all atoms, where the
    fit follows the larger moved part. Other arguments as for :func:`map_model_correlation`.
    """
    correlation = map_model_correlation(volume, coords, atomic_numbers, grid, centre, source)
    if not correlation >= FIT_THRESHOLD:
        raise ValueError(f"{source}: the reference is not fitted into the map (map–model correlation "
                         f"{correlation:.2f} < {FIT_THRESHOLD}); fit the model into the map first, e.g. with "
                         "ChimeraX fitmap")
    if not probes:
        return correlation
    fit = rigid_fit(volume, np.asarray(coords, np.float64) - np.asarray(centre, np.float64), atomic_numbers, grid)
    if fit.displacement > MAX_FIT_DISPLACEMENT:
        raise ValueError(f"{source}: the reference is not placed in the map: a rigid-body fit moves it "
                         f"{fit.shift:.1f} Å / {fit.turn:.0f}° ({fit.displacement:.1f} Å RMS over its atoms, more "
                         f"than {MAX_FIT_DISPLACEMENT:g}); fit it into the map first (e.g. ChimeraX fitmap), then "
                         "retry; for a map of a far conformation superposed on all atoms rather than on a rigid "
                         "core, pass --allow-far-conformation (command line)")
    return correlation


def ingest_map(path: str | os.PathLike, grid: MapGrid, coords: np.ndarray, atomic_numbers: np.ndarray,
               centre=None, probes: bool = True, res_nums=None) -> tuple[np.ndarray, float]:
    """Read a map and bring it onto ``grid``, refusing maps that do not contain or fit the reference.

    coords : (N, 3) Å, the reference fitted into the map, in the map's frame; atomic_numbers : (N,) its Z.
    centre : (3,) Å in the map's frame where the model's box is centred; default the reference's centroid.
    probes : False to skip the rigid-body part of the fit check (:func:`check_placed`).
    res_nums : (N,) int, optional, the atoms' residue numbers, named when a few lie outside the map's box
        (:func:`check_contains`); the grid there is zero.

    Returns (volume (D, D, D) float32 axes (x, y, z), map–model correlation at grid.resolution).
    """
    volume, apix, origin = read_mrc(path)
    coords = np.asarray(coords, np.float64)
    check_contains(coords, volume.shape, apix, origin, str(path), res_nums)
    centre = coords.mean(0) if centre is None else np.asarray(centre, np.float64)
    on_grid = resample_to_grid(volume, apix, origin, grid, centre)
    if not np.any(on_grid):
        raise ValueError(f"{path}: the map is zero around the reference; use the map the reference was fitted into")
    return on_grid, check_placed(on_grid, coords, atomic_numbers, grid, centre, str(path), probes)


def model_scale(volume: np.ndarray, model_coords: np.ndarray, atomic_numbers: np.ndarray, grid: MapGrid) -> float:
    """The factor that brings an ingested map to the renderer's density units: the map is fitted as
    ``volume ≈ k · rendered`` by least squares (k = Σ v r / Σ r²) and the factor is 1 / k.

    A user's map is in arbitrary units, but the model's V̂₀ is always a rendering of atoms (eq. 3), so the
    denoising loss (eq. 5) compares like with like only after this scaling. Noise uncorrelated with the
    rendering leaves k unbiased; the other regression (Σ v r / Σ v²) shrank noisy maps, by 5× at SNR 0.3.
    volume: (D, D, D) on ``grid``; model_coords: (N, 3) Å in the grid's frame; atomic_numbers: (N,).
    """
    rendered = _render(model_coords, atomic_numbers, grid).astype(np.float64)
    return float((rendered * rendered).sum() / (np.asarray(volume, np.float64) * rendered).sum())


def to_model_units(volume: np.ndarray, place: RigidTransform, coords: np.ndarray, atomic_numbers: np.ndarray,
                   grid: MapGrid) -> tuple[np.ndarray, float]:
    """A map ingested around a reference (:func:`ingest_map`, axis-aligned in the reference's frame) turned into the
    model's frame by ``place`` and scaled to the renderer's density units (:func:`model_scale`), as training and
    the read-out take it: (volume (D, D, D) float32, the scale applied).

    coords: (N, 3) Å, the reference in its own (the map's) frame; atomic_numbers (N,).
    """
    in_model = map_to_model_frame(volume, place)  # unchanged for a placement without rotation
    scale = model_scale(in_model, place.apply(coords), atomic_numbers, grid)
    return np.float32(scale) * in_model, scale
