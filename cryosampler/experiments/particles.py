"""Particles from a known ensemble: what a cryo-EM dataset of adenylate kinase's DIMS path would look like, written
as the files users hand to cryoDRGN (an ``.mrcs`` stack and a RELION 3.1 STAR file), with the truth kept beside it.

Each particle is one frame of the path, drawn with the path's population (two basins and a sparse transition,
:data:`BASINS_70_30`), projected at a uniformly random pose (:mod:`cryosampler.physics.projection`), filtered by a
CTF of its own defocus (:mod:`cryosampler.physics.ctf`) and buried in white noise at signal-to-noise ratio
``snr`` (variance of the CTF-filtered projections over the whole box, averaged over the dataset, divided by the
noise variance). Structures are centred on the path's mean atom, so that a reconstruction from the images puts
that point at the box's centre voxel D//2.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cryosampler.experiments.user_maps import path_population
from cryosampler.io.files import recorded_settings
from cryosampler.io.particles import Optics, write_particles
from cryosampler.physics.ctf import apply_ctf, ctf_2d, frequency_grid
from cryosampler.physics.projection import project_atoms, random_rotations

__all__ = ["BASINS_70_30", "ParticleConfig", "PARTICLE_PRESETS", "ParticleSet", "simulate_particles",
           "map_frame_offset", "write_dataset", "particle_dataset"]

# (position along the path, width, weight): 67 % in the closed basin, 27 % in the open one and a uniform 6 % in
# between, so that the closed half of the path holds 70 % and the open half 30 % of the particles.
BASINS_70_30 = ((0.0, 0.12, 0.67), (1.0, 0.12, 0.27))


@dataclass(frozen=True)
class ParticleConfig:
    """How a particle dataset is simulated."""

    n_particles: int = 6000
    optics: Optics = Optics()
    resolution: float = 4.0  # Å of the projected atoms' Gaussians (the renderer's convention)
    snr: float = 0.1
    defocus: tuple[float, float] = (10000.0, 25000.0)  # Å, DefocusU drawn uniformly in this range
    astigmatism: float = 400.0  # Å, DefocusU − DefocusV drawn uniformly in [0, astigmatism]

    def __post_init__(self):
        if self.n_particles < 1:
            raise ValueError(f"n_particles must be at least 1, got {self.n_particles}")
        if not self.snr > 0:
            raise ValueError(f"snr must be positive, got {self.snr}")
        if not 0 < self.defocus[0] <= self.defocus[1]:
            raise ValueError(f"defocus must be a range (low, high) of positive Å, got {self.defocus}")


PARTICLE_PRESETS = {
    "default": ParticleConfig(),
    "smoke": ParticleConfig(n_particles=400, optics=Optics(size=32, apix=4.0), resolution=8.0, snr=2.0),
}


@dataclass(frozen=True)
class ParticleSet:
    """Simulated particles and their truth."""

    images: np.ndarray  # (B, D, D) float32, [y, x]
    rotations: np.ndarray  # (B, 3, 3), the poses projected with
    defocus: np.ndarray  # (B, 3): DefocusU Å, DefocusV Å, DefocusAngle degrees
    frame: np.ndarray  # (B,) int64, the path frame each particle shows
    noise_sigma: float  # standard deviation of the added noise


def simulate_particles(frames: np.ndarray, atomic_numbers: np.ndarray, config: ParticleConfig,
                       rng: np.random.Generator, basins=BASINS_70_30, batch: int = 500) -> ParticleSet:
    """Particles of the structures ``frames`` (F, N, 3) Å along a path, drawn with :func:`path_population`.

    atomic_numbers: (N,). The structures are centred on their common mean (module docstring).
    """
    frames = np.asarray(frames, np.float64)
    centred = frames - frames.reshape(-1, 3).mean(0)
    n, optics = config.n_particles, config.optics
    frame = rng.choice(len(frames), size=n, p=path_population(len(frames), basins))
    rotations = random_rotations(n, rng)
    defocus_u = rng.uniform(*config.defocus, size=n)
    defocus = np.stack([defocus_u, defocus_u - rng.uniform(0.0, config.astigmatism, size=n),
                        rng.uniform(0.0, 180.0, size=n)], axis=1)
    freqs = frequency_grid(optics.size, optics.apix)
    signal = np.empty((n, optics.size, optics.size), np.float32)
    for start in range(0, n, batch):
        part = slice(start, min(start + batch, n))
        projections = project_atoms(centred[frame[part]], atomic_numbers, rotations[part], optics.size, optics.apix,
                                    config.resolution)
        ctf = ctf_2d(freqs, *defocus[part].T, optics.voltage, optics.cs, optics.amplitude_contrast)
        signal[part] = apply_ctf(projections, ctf)
    sigma = float(np.sqrt(signal.var(axis=(1, 2)).mean() / config.snr))
    # Protein dark, as in micrographs: cryoDRGN inverts the sign by default (train_vae --uninvert-data).
    images = -signal + rng.normal(0.0, sigma, size=signal.shape).astype(np.float32)
    return ParticleSet(images, rotations, defocus, frame, sigma)


def map_frame_offset(frames: np.ndarray, optics: Optics) -> np.ndarray:
    """(3,) Å to add to ``frames`` (F, N, 3) to put them where a reconstruction of their particles shows them: the
    path's mean atom at the centre of voxel D//2 of a map whose voxel (0, 0, 0) sits at the origin (cryoDRGN's)."""
    return (optics.size // 2) * optics.apix - np.asarray(frames, np.float64).reshape(-1, 3).mean(0)


def write_dataset(folder: str | Path, particles: ParticleSet, optics: Optics) -> Path:
    """Write ``particles`` as ``folder/particles.mrcs`` and ``folder/particles.star`` plus the truth,
    ``folder/truth.csv`` (particle, frame); return the STAR file's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    star = write_particles(folder, particles.images, particles.rotations, particles.defocus, optics)
    np.savetxt(folder / "truth.csv", np.stack([np.arange(len(particles.frame)), particles.frame], 1), fmt="%d",
               delimiter=",", header="particle,frame", comments="")
    return star


def particle_dataset(folder: str | Path, frames: np.ndarray, atomic_numbers: np.ndarray, config: ParticleConfig,
                     seed: int) -> tuple[Path, np.ndarray]:
    """The dataset of :func:`simulate_particles` (``np.random.default_rng(seed)``) in ``folder``, simulated and
    written once: (the STAR file's path, (B,) the true frame of each particle). A folder holding a dataset made
    with other settings is refused rather than reused."""
    folder = Path(folder)
    settings = {"config": json.loads(json.dumps(asdict(config))), "seed": seed, "frames": list(frames.shape)}
    recorded, star, truth = folder / "settings.json", folder / "particles.star", folder / "truth.csv"
    if not (recorded_settings(recorded, settings, "particles simulated") and star.is_file() and truth.is_file()):
        particles = simulate_particles(frames, atomic_numbers, config, np.random.default_rng(seed))
        write_dataset(folder, particles, config.optics)
        recorded.write_text(json.dumps(settings, indent=1))
    return star, np.loadtxt(truth, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)[:, 1]
