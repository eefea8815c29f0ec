"""Realistic maps: B-factor blur, resolution limit and Gaussian noise applied to a clean simulated map.

Every function takes a map ``volume`` (X, Y, Z) float, axes (x, y, z), sampled at ``apix`` Å, and returns a new
float32 map of the same shape; the input is never modified. Filters act in Fourier space (numpy.fft, periodic
box) on the spatial frequency s = |k| in 1/Å, with k the FFT frequencies ``fftfreq(n, d=apix)`` per axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["b_factor_blur", "low_pass", "signal_mask", "add_noise_at_snr", "DegradeConfig", "degrade", "MASK_FRACTION"]

# The mask of "signal" voxels: above this fraction of the map's maximum (as in the fit-check data).
MASK_FRACTION = 0.05


def _check_map(volume: np.ndarray, apix: float) -> None:
    if volume.ndim != 3:
        raise ValueError(f"map must be (X, Y, Z), got shape {volume.shape}; pass one 3D volume")
    if not apix > 0:
        raise ValueError(f"voxel size apix={apix} Å must be > 0; pass the map's voxel size in Å")


def _check_b_factor(b_factor: float) -> None:
    if not b_factor >= 0:
        raise ValueError(f"B-factor {b_factor} Å² must be >= 0 (0 means no blur); use e.g. 50-200 Å²")


def _check_resolution(resolution: float) -> None:
    if not resolution > 0:
        raise ValueError(f"resolution {resolution} Å must be > 0; use e.g. 4, 6 or 8 Å, or None for no limit")


def _check_snr(snr: float) -> None:
    if not snr > 0:
        raise ValueError(f"SNR {snr} must be > 0; use e.g. 1, 0.3 or 0.1, or inf for no noise")


def _spatial_frequency(shape: tuple[int, int, int], apix: float) -> np.ndarray:
    """|k| (1/Å) on the rfftn grid of a (X, Y, Z) map: (X, Y, Z // 2 + 1) float64."""
    axes = [np.fft.fftfreq(n, d=apix) for n in shape[:2]] + [np.fft.rfftfreq(shape[2], d=apix)]
    kx, ky, kz = np.meshgrid(*axes, indexing="ij", sparse=True)
    return np.sqrt(kx**2 + ky**2 + kz**2)


def _fourier_filter(volume: np.ndarray, transfer: np.ndarray) -> np.ndarray:
    """Multiply the map's Fourier transform by ``transfer`` (rfftn layout); float64 result."""
    return np.fft.irfftn(np.fft.rfftn(volume) * transfer, s=volume.shape, axes=(0, 1, 2))


def b_factor_blur(volume: np.ndarray, apix: float, b_factor: float) -> np.ndarray:
    """Blur by a B-factor: F(s) → F(s) exp(-B s² / 4), s in 1/Å, B in Å² (e.g. 50-200).

    This is the crystallographic convention (the Debye-Waller factor exp(-B s² / 4) with s = 1 / d): it
    convolves the map with a Gaussian of variance B / (8 π²) Å² per axis, so a Gaussian blob of variance σ²
    becomes one of variance σ² + B / (8 π²). B = 0 returns the map unchanged.

    volume (X, Y, Z) float, axes (x, y, z); apix Å. Returns (X, Y, Z) float32.
    """
    volume = np.asarray(volume)
    _check_map(volume, apix)
    _check_b_factor(b_factor)
    if b_factor == 0:
        return volume.astype(np.float32)  # exactly, without an FFT round trip's rounding
    s = _spatial_frequency(volume.shape, apix)
    return _fourier_filter(volume.astype(np.float64), np.exp(-b_factor * s**2 / 4.0)).astype(np.float32)


def low_pass(volume: np.ndarray, apix: float, resolution: float) -> np.ndarray:
    """Limit a map to ``resolution`` Å: zero s > 1/resolution, with a raised-cosine edge from 0.8 to 1.0 of it.

    The transfer is 1 for s ≤ 0.8 / resolution, falls as a half cosine to 0 at s = 1 / resolution and is 0
    beyond, so nothing finer than ``resolution`` survives. The edge is narrow, so it rings nearly as a hard
    cut-off does (undershoots measured in docs/design.md, "Measurements behind constants"). Map ingestion uses it with resolution = 2 × the target voxel size (the target
    Nyquist) before downsampling.

    volume (X, Y, Z) float, axes (x, y, z); apix Å. Returns (X, Y, Z), float64 for float64 input, else float32.
    """
    volume = np.asarray(volume)
    _check_map(volume, apix)
    _check_resolution(resolution)
    cutoff = 1.0 / resolution  # 1/Å
    edge = np.clip((_spatial_frequency(volume.shape, apix) - 0.8 * cutoff) / (0.2 * cutoff), 0.0, 1.0)
    transfer = 0.5 * (1.0 + np.cos(np.pi * edge))  # 1 below 0.8 cutoff, 0 above cutoff
    out = _fourier_filter(volume.astype(np.float64), transfer)
    return out if volume.dtype == np.float64 else out.astype(np.float32)


def signal_mask(volume: np.ndarray, fraction: float = MASK_FRACTION) -> np.ndarray:
    """(X, Y, Z) bool: voxels above ``fraction`` of the map's maximum, the region whose variance is the signal."""
    volume = np.asarray(volume)
    return volume > fraction * volume.max()


def add_noise_at_snr(volume: np.ndarray, snr: float, rng: np.random.Generator,
                     mask: np.ndarray | None = None) -> np.ndarray:
    """Add white Gaussian noise at a per-voxel SNR inside a mask: SNR = var(volume[mask]) / var(noise).

    volume (X, Y, Z) float, axes (x, y, z), the noise-free map; snr > 0, ``inf`` returns a float32 copy with no
    noise; rng supplies the noise (same state, same noise); mask (X, Y, Z) bool, default
    :func:`signal_mask` of ``volume``. The noise (standard deviation sqrt(var(volume[mask]) / snr)) is added to
    every voxel, inside the mask and out. Returns (X, Y, Z) float32.
    """
    volume = np.asarray(volume)
    _check_snr(snr)
    mask = signal_mask(volume) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != volume.shape:
        raise ValueError(f"mask shape {mask.shape} differs from map shape {volume.shape}; pass a mask of the map")
    if not mask.any():
        raise ValueError("signal mask is empty (the map has no voxel above the mask threshold); "
                         "pass a non-empty mask or a map with positive density")
    if math.isinf(snr):
        return volume.astype(np.float32)
    sigma = math.sqrt(float(volume[mask].astype(np.float64).var()) / snr)
    return (volume + sigma * rng.standard_normal(volume.shape)).astype(np.float32)


@dataclass(frozen=True)
class DegradeConfig:
    """A degradation recipe, applied by :func:`degrade` as blur, then resolution limit, then noise."""

    b_factor: float = 0.0  # Å², B-factor blur (0: none); e.g. 50-200
    resolution: float | None = None  # Å, low-pass limit (None: none); e.g. 4, 6, 8
    snr: float = math.inf  # per-voxel SNR inside the mask (inf: no noise); e.g. 1, 0.3, 0.1

    def __post_init__(self):
        _check_b_factor(self.b_factor)
        if self.resolution is not None:
            _check_resolution(self.resolution)
        _check_snr(self.snr)


def degrade(volume: np.ndarray, apix: float, config: DegradeConfig, rng: np.random.Generator,
            mask: np.ndarray | None = None) -> np.ndarray:
    """Apply ``config`` to a clean map: B-factor blur, then low-pass to the resolution, then noise.

    volume (X, Y, Z) float, axes (x, y, z); apix Å. The noise's SNR is measured on the blurred, limited map
    inside ``mask`` (default: :func:`signal_mask` of that map), the signal a user's map actually carries.
    Returns (X, Y, Z) float32.
    """
    out = b_factor_blur(volume, apix, config.b_factor)
    if config.resolution is not None:
        out = low_pass(out, apix, config.resolution)
    return add_noise_at_snr(out, config.snr, rng, mask)
