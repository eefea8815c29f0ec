"""Sampling atomic ensembles (A.2): DDIM in map space, then the read-out of eq. 12."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from cryosampler.diffusion import ddim_sample, readout_time
from cryosampler.featurize import ProteinFeatures, collate, featurize
from cryosampler.frame import RigidTransform, placement
from cryosampler.model import CryoSampler
from cryosampler.render import check_in_box
from cryosampler.structure import Structure

__all__ = ["Ensemble", "sample_ensemble", "prepare_reference", "sample_structure"]


@dataclass(frozen=True)
class Ensemble:
    """Samples of one protein, in the model's common frame."""

    coords: np.ndarray  # (S, N, 3) float32, Å: X_final of eq. 12
    maps: np.ndarray  # (S, D, D, D) float32, map units, axes (x, y, z): σ_data · V_{t_K}


@torch.no_grad()
def sample_ensemble(model: CryoSampler, protein: ProteinFeatures, n_samples: int, generator: torch.Generator,
                    batch_size: int = 16, n_steps: int | None = None, progress: bool = False) -> Ensemble:
    """Draw ``n_samples`` conformations of ``protein`` with K-step DDIM (eq. 9–11) and the read-out (eq. 12).

    n_steps: K; default the model's (paper: 100).

    Samples are drawn in batches of ``batch_size``; the generator is consumed batch after batch, so the
    result is deterministic for a given generator state, batch size and model.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    model.eval()
    grid, config = model.config.grid, model.config.diffusion
    if n_steps is not None:
        config = dataclasses.replace(config, n_steps=n_steps)
    coords, maps = [], []
    chunks = [min(batch_size, n_samples - start) for start in range(0, n_samples, batch_size)]
    for size in tqdm(chunks, desc="sample", disable=not progress or len(chunks) == 1):
        batch = collate([protein] * size)

        def denoise_fn(v_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return model.denoise(v_t, t, batch)[1] / model.sigma_data  # eq. 9

        v_final = ddim_sample(denoise_fn, (size,) + (grid.size,) * 3, generator, config, progress=progress)
        x_final = model.atoms(v_final, readout_time(size), batch)  # eq. 12
        coords.append(x_final)
        maps.append(v_final * model.sigma_data)
    return Ensemble(torch.cat(coords).numpy(), torch.cat(maps).numpy())


def prepare_reference(model: CryoSampler, structure: Structure) -> tuple[ProteinFeatures, RigidTransform]:
    """Place a user's reference in the model's frame and check the model can take it.

    Raises ValueError naming the problem: too few residue numbers shared with the model's template, atoms
    outside the map box, or more tokens than the model has slots for.
    """
    place = placement(structure, model.template)
    enc = model.config.encoder
    protein = featurize(structure, place.apply(structure.coords), tokens=enc.tokens)
    check_in_box(protein.ref_coords[None], model.config.grid)
    n_tokens = protein.token_position.shape[0]
    if enc.volume_features == "global" and n_tokens > enc.max_tokens:
        raise ValueError(f"{structure.name}: {n_tokens} {enc.tokens} tokens, but this model takes at most "
                         f"{enc.max_tokens}")
    return protein, place


def sample_structure(model: CryoSampler, structure: Structure, n_samples: int, seed: int,
                     batch_size: int = 16, n_steps: int | None = None,
                     progress: bool = False) -> tuple[np.ndarray, Ensemble]:
    """Sample an ensemble for ``structure`` and return it in the structure's own frame.

    Returns (coords (S, N, 3) float64 Å in the input frame, the Ensemble in the model's frame).
    """
    protein, place = prepare_reference(model, structure)
    generator = torch.Generator().manual_seed(seed)
    ensemble = sample_ensemble(model, protein, n_samples, generator, batch_size, n_steps, progress)
    return place.inverse().apply(ensemble.coords.astype(np.float64)), ensemble
