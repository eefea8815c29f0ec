"""Particle datasets as RELION 3.1 writes them (wrapping ``starfile``): an ``.mrcs`` image stack and a STAR file
with an optics block and a particles block, which is what users hand to cryoDRGN (``parse_pose_star``,
``parse_ctf_star``, ``train_vae``).

Rotations are stored as RELION's Euler angles (rlnAngleRot, rlnAngleTilt, rlnAnglePsi, degrees). The conversion is
cryoDRGN's (``cryodrgn.utils.R_to_relion_scipy`` / ``R_from_relion_scipy``), so that the rotation cryoDRGN reads
back is the one the images were projected with (:mod:`cryosampler.physics.projection`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import starfile
from scipy.spatial.transform import Rotation

from cryosampler.io.files import atomic_path
from cryosampler.io.mrc import write_image_stack

__all__ = ["Optics", "relion_eulers", "rotations_from_relion", "write_particles", "read_particles_star"]

# Sign pattern of cryoDRGN's conversion between its rotations and RELION's ZYZ Euler angles.
_FLIP = np.array([[1.0, -1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, -1.0, 1.0]])


@dataclass(frozen=True)
class Optics:
    """One optics group: the microscope and the images' sampling."""

    voltage: float = 300.0  # kV
    cs: float = 2.7  # mm, spherical aberration
    amplitude_contrast: float = 0.1
    apix: float = 2.0  # Å per pixel
    size: int = 64  # pixels per side


def relion_eulers(rotations: np.ndarray) -> np.ndarray:
    """RELION's (rot, tilt, psi) Euler angles, degrees in [-180, 180), of ``rotations`` (B, 3, 3): (B, 3)."""
    euler = Rotation.from_matrix(np.asarray(rotations, np.float64) * _FLIP).as_euler("zxz", degrees=True)
    euler[:, 0] -= 90.0
    euler[:, 2] += 90.0
    return (euler + 180.0) % 360.0 - 180.0


def rotations_from_relion(eulers: np.ndarray) -> np.ndarray:
    """Inverse of :func:`relion_eulers`: (B, 3) degrees → (B, 3, 3)."""
    euler = np.array(eulers, np.float64).reshape(-1, 3)
    euler[:, 0] += 90.0
    euler[:, 2] -= 90.0
    return Rotation.from_euler("zxz", euler, degrees=True).as_matrix() * _FLIP


def write_particles(folder: str | os.PathLike, images: np.ndarray, rotations: np.ndarray, defocus: np.ndarray,
                    optics: Optics, name: str = "particles") -> Path:
    """Write ``images`` (B, D, D) [y, x] as ``folder/name.mrcs`` and ``folder/name.star`` (RELION 3.1: optics
    and particles blocks); return the STAR file's path.

    rotations: (B, 3, 3), the poses the images were projected with (zero shifts). defocus: (B, 3), DefocusU Å,
    DefocusV Å, DefocusAngle degrees.
    """
    folder = Path(folder)
    images = np.asarray(images, np.float32)
    if images.shape[1:] != (optics.size, optics.size):
        raise ValueError(f"images are {images.shape[1:]}, the optics group says {optics.size}² pixels")
    n = len(images)
    stack = folder / f"{name}.mrcs"
    write_image_stack(stack, images, optics.apix)
    eulers = relion_eulers(rotations)
    defocus = np.asarray(defocus, np.float64)
    blocks = {
        "optics": pd.DataFrame({
            "rlnOpticsGroupName": ["opticsGroup1"], "rlnOpticsGroup": [1], "rlnVoltage": [optics.voltage],
            "rlnSphericalAberration": [optics.cs], "rlnAmplitudeContrast": [optics.amplitude_contrast],
            "rlnImagePixelSize": [optics.apix], "rlnImageSize": [optics.size], "rlnImageDimensionality": [2]}),
        "particles": pd.DataFrame({
            "rlnImageName": [f"{k + 1:06d}@{stack.name}" for k in range(n)],
            "rlnAngleRot": eulers[:, 0], "rlnAngleTilt": eulers[:, 1], "rlnAnglePsi": eulers[:, 2],
            "rlnOriginXAngst": np.zeros(n), "rlnOriginYAngst": np.zeros(n),
            "rlnDefocusU": defocus[:, 0], "rlnDefocusV": defocus[:, 1], "rlnDefocusAngle": defocus[:, 2],
            "rlnPhaseShift": np.zeros(n), "rlnOpticsGroup": np.ones(n, np.int64)}),
    }
    star = folder / f"{name}.star"
    with atomic_path(star) as tmp:
        starfile.write(blocks, tmp)
    return star


def read_particles_star(path: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The optics and particles blocks of a RELION 3.1 STAR file (column names without the leading ``rln``'s
    underscore, as ``starfile`` gives them); a one-line ValueError when the file is not one."""
    path = Path(path)
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as err:  # starfile raises what its parser meets: name the file instead
        raise ValueError(f"{path}: not a readable STAR file ({err})") from err
    missing = [b for b in ("optics", "particles") if b not in blocks]
    if missing:
        raise ValueError(f"{path}: no data_{missing[0]} block; write a RELION 3.1 STAR file (optics and particles)")
    return blocks["optics"], blocks["particles"]
