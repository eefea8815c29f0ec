"""Map ingestion: a user's map (own voxel size, box, origin) → the model's grid, and the map–model fit check.

A map read by :func:`cryosampler.io.mrc.read_mrc` is a volume (x, y, z) whose voxel (i, j, k) is centred at
``origin + (i, j, k) * apix`` Å in the map's frame, the frame the reference model was fitted in. The model's
grid (``render.MapGrid``) places voxel (i, j, k) at ``((i, j, k) - D//2) * grid.apix`` Å around its own
origin; :func:`resample_to_grid` puts that origin at ``centre`` (map frame, Å) and samples the map there.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from scipy import ndimage

from cryosampler.io.grid import MapGrid
from cryosampler.io.mrc import read_mrc
from cryosampler.physics.correlation import map_correlation
from cryosampler.physics.degrade import low_pass
from cryosampler.physics.frame import RigidTransform, map_to_model_frame
from cryosampler.physics.render import check_in_box, render_density

__all__ = ["resample_to_grid", "check_contains", "map_model_correlation", "check_placed", "ingest_map", "model_scale",
           "to_model_units", "FIT_THRESHOLD", "FIT_GAIN_THRESHOLD"]

# Fit check (check_placed). Pearson r alone cannot tell a misplaced model from noise, so the reference is also
# moved ±2 Å along x, y, z and turned ±10° about them (the probes): if the best probe fits the map better by more
# than FIT_GAIN_THRESHOLD (relative), the reference is not placed in the map. The gain barely depends on the
# noise; the measurements that set both thresholds are in docs/design.md, "Measurements behind constants".
FIT_GAIN_THRESHOLD = 0.01
# Pearson r below which the map is taken as not of the reference at all (a fitted model at SNR 0.1 stays above).
FIT_THRESHOLD = 0.1
PROBE_SHIFT = 2.0  # Å
PROBE_TURN = 10.0  # degrees


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
    (D, D, D) float32, axes (x, y, z). Voxels of the grid outside the map's box are 0.

    Downsampling (grid.apix > apix) first removes frequencies above the grid's Nyquist, 1 / (2 grid.apix),
    so that nothing aliases. Values are then interpolated by cubic B-splines (order 3): on a map sampled
    near its own Nyquist trilinear interpolation blurs measurably (docs/design.md, "Measurements behind
    constants").
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
    if grid.apix > apix:
        crop = low_pass(crop, apix, 2.0 * grid.apix)

    ii, jj, kk = np.meshgrid(*(index[:, d] - lo[d] for d in range(3)), indexing="ij")
    out = ndimage.map_coordinates(crop, [ii, jj, kk], order=3, mode="nearest")  # (D, D, D)
    out *= inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]
    return out.astype(np.float32)


def check_contains(coords: np.ndarray, shape, apix: float, origin, source: str) -> None:
    """Raise ValueError naming ``source`` unless all atoms ``coords`` (N, 3) Å lie within the map's box.

    The box spans origin to origin + (shape - 1) apix Å per axis (voxel centres), in the map's frame.
    """
    coords = np.asarray(coords, np.float64)
    low = np.asarray(origin, np.float64)
    high = low + (np.asarray(shape) - 1) * apix
    outside = np.any((coords < low) | (coords > high), axis=1)
    if outside.any():
        raise ValueError(
            f"{source}: the map does not contain the reference: {int(outside.sum())} of {len(coords)} atoms lie "
            f"outside its box ({', '.join(f'{a:.1f} to {b:.1f}' for a, b in zip(low, high))} Å along x, y, z); "
            f"use the map the reference was fitted into, or a larger box")


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


def _probes(coords: np.ndarray) -> list[np.ndarray]:
    """(N, 3) Å → 12 copies: moved ±PROBE_SHIFT Å along x, y, z and turned ±PROBE_TURN° about x, y, z through
    the centroid."""
    centroid = coords.mean(0)
    moved = [coords + step * axis for axis in np.eye(3) for step in (-PROBE_SHIFT, PROBE_SHIFT)]
    for axis in range(3):
        for angle in (-PROBE_TURN, PROBE_TURN):
            c, s = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
            u, v = [d for d in range(3) if d != axis]
            rotation = np.eye(3)
            rotation[u, u], rotation[u, v], rotation[v, u], rotation[v, v] = c, -s, s, c
            moved.append((coords - centroid) @ rotation.T + centroid)
    return moved


def check_placed(volume: np.ndarray, coords: np.ndarray, atomic_numbers: np.ndarray, grid: MapGrid, centre,
                 source: str, probes: bool = True) -> float:
    """Raise ValueError naming ``source`` unless the reference is fitted into the ingested map; return its r.

    Refuses if r < FIT_THRESHOLD, or if moving the reference by a probe (±2 Å, ±10°) raises r by more than
    FIT_GAIN_THRESHOLD relative to r: the given placement is then not the best fit (measurements above).
    ``probes=False`` keeps only the r floor: a map of another conformation than the reference also gains
    from a probe (calmodulin 4CLN's state A, 4 Å from its reference: r 0.85, +1.2 % moved). Other arguments
    as for :func:`map_model_correlation`.
    """
    correlation = map_model_correlation(volume, coords, atomic_numbers, grid, centre, source)
    advice = "fit the model into the map first, e.g. with ChimeraX fitmap"
    if not correlation >= FIT_THRESHOLD:
        raise ValueError(f"{source}: the reference is not fitted into the map (map–model correlation "
                         f"{correlation:.2f} < {FIT_THRESHOLD}); {advice}")
    if not probes:
        return correlation
    centre = np.asarray(centre, np.float64)
    best = max(_correlation(volume, p - centre, atomic_numbers, grid) for p in _probes(np.asarray(coords, np.float64)))
    if best > correlation * (1.0 + FIT_GAIN_THRESHOLD):
        raise ValueError(f"{source}: the reference is not fitted into the map (map–model correlation "
                         f"{correlation:.2f}, but {best:.2f} with the model moved by {PROBE_SHIFT:g} Å or "
                         f"{PROBE_TURN:g}°); {advice}, or, if the map is of another conformation than the "
                         "reference, pass --skip-fit-probes (command line)")
    return correlation


def ingest_map(path: str | os.PathLike, grid: MapGrid, coords: np.ndarray, atomic_numbers: np.ndarray,
               centre=None, probes: bool = True) -> tuple[np.ndarray, float]:
    """Read a map and bring it onto ``grid``, refusing maps that do not contain or fit the reference.

    coords : (N, 3) Å, the reference fitted into the map, in the map's frame; atomic_numbers : (N,) its Z.
    centre : (3,) Å in the map's frame where the model's box is centred; default the reference's centroid.
    probes : False to skip the moved-model part of the fit check (:func:`check_placed`).

    Returns (volume (D, D, D) float32 axes (x, y, z), map–model correlation at grid.resolution).
    """
    volume, apix, origin = read_mrc(path)
    coords = np.asarray(coords, np.float64)
    check_contains(coords, volume.shape, apix, origin, str(path))
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
