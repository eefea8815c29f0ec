"""Run profiles: where a notebook writes its outputs, and how much work it does.

Two named presets. ``full`` is what ``./run_all.sh`` runs: it writes the committed ``figures/`` and
``tables/``. ``fast`` is what ``pytest --nbmake notebooks/`` runs (the default inside a notebook):
it only shrinks sizes and writes everything under ``results/fast/``, so it never overwrites full
results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Profile", "PROFILES", "get_profile", "repo_root"]


def repo_root() -> Path:
    """The repository holding this package (editable install), else the current directory."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


@dataclass(frozen=True)
class Profile:
    """Output locations and work sizes of one notebook run."""

    name: str
    publish: bool  # True: figures/tables go to the committed figures/ and tables/ folders
    encoder_preset: str  # key of encoder.ENCODER_PRESETS
    train_preset: str  # key of training.TRAIN_PRESETS
    n_samples: int  # samples per protein and seed (paper: 16)
    ddim_steps: int  # K (paper: 100)
    seeds: tuple[int, ...]  # sampling seeds; tables report mean ± sd over them
    step_sweep: tuple[int, ...]  # DDIM step counts K compared in notebook 03 (first seed); includes ddim_steps
    own_maps_steps: int  # training steps of each model of notebook 07 (users' maps)
    own_maps_count: int  # maps in each training folder of notebook 07 (k-means volumes of a reconstruction)
    own_maps_fit_frames: int  # path frames whose maps notebook 07 reads out with cryosampler fit, per resolution
    domain_motion_steps: int  # training steps of notebook 06's model of the seven domain-motion proteins
    latent_preset: str  # key of latent_model.LATENT_MODEL_PRESETS: notebooks 06 and 07's latent models
    latent_steps: int  # stage-1 training steps of each latent model of notebooks 06 and 07
    latent_samples: int  # samples per reference of a latent model (it decodes once per sample)
    particles_preset: str  # key of particles.PARTICLE_PRESETS: notebook 08's simulated dataset
    cryodrgn_preset: str  # key of heterogeneous.CRYODRGN_PRESETS: notebook 08's cryoDRGN run
    particles_latent_steps: int  # stage-1 training steps of notebook 08's latent models
    complex_maps: int  # maps of notebook 09's simulated complex
    complex_latent_steps: int  # stage-1 training steps of notebook 09's latent model

    @property
    def results_dir(self) -> Path:
        """Generated data, checkpoints and samples (git-ignored); ``$CRYOSAMPLER_RESULTS`` overrides."""
        base = Path(os.environ.get("CRYOSAMPLER_RESULTS", repo_root() / "results"))
        return base / self.name

    @property
    def figures_dir(self) -> Path:
        return repo_root() / "figures" if self.publish else self.results_dir / "figures"

    @property
    def tables_dir(self) -> Path:
        return repo_root() / "tables" if self.publish else self.results_dir / "tables"

    @property
    def data_dir(self) -> Path:
        """Simulated structures and maps written by notebook 01."""
        return self.results_dir / "data"

    def ensemble_path(self, method: str, slot: str, seed: int) -> Path:
        """Multi-model PDB of one scored ensemble: CryoSampler's ("Ours", notebook 03) or a baseline's (04)."""
        if method == "Ours":
            return self.results_dir / "samples" / f"{slot}_seed{seed}.pdb"
        return self.results_dir / "baselines" / f"{method.replace(' ', '_')}_{slot}_seed{seed}.pdb"

    def ensure_dirs(self) -> None:
        for d in (self.results_dir, self.figures_dir, self.tables_dir, self.data_dir):
            d.mkdir(parents=True, exist_ok=True)


PROFILES = {
    "full": Profile(name="full", publish=True, encoder_preset="default", train_preset="default", n_samples=16,
                    ddim_steps=100, seeds=(0, 1, 2), step_sweep=(10, 25, 50, 100), own_maps_steps=300,
                    own_maps_count=20, own_maps_fit_frames=9, domain_motion_steps=800,
                    latent_preset="default", latent_steps=900, latent_samples=100, particles_preset="default",
                    cryodrgn_preset="default", particles_latent_steps=500, complex_maps=20,
                    complex_latent_steps=500),
    # Same code at toy sizes: a few training steps, few samples, few DDIM steps.
    "fast": Profile(name="fast", publish=False, encoder_preset="smoke", train_preset="smoke", n_samples=4,
                    ddim_steps=10, seeds=(0,), step_sweep=(5, 10), own_maps_steps=4,
                    own_maps_count=3, own_maps_fit_frames=2, domain_motion_steps=4,
                    latent_preset="smoke", latent_steps=3, latent_samples=8, particles_preset="smoke",
                    cryodrgn_preset="smoke", particles_latent_steps=3, complex_maps=3,
                    complex_latent_steps=3),
}


def get_profile(name: str) -> Profile:
    """Look up a profile by name; ValueError lists the valid names."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]
