"""Ensembles and read-outs of the latent model family (issue 36): sample = latent DDIM (stage 2) → decode (stage 1),
one structure per latent; read-out = encode a map → decode its posterior mean."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cryosampler.model.autoencoder import MapAutoencoder
from cryosampler.model.featurize import ProteinFeatures, collate
from cryosampler.model.latent_diffusion import LatentDenoiser, sample_latents

__all__ = ["LatentEnsemble", "sample_structures", "read_out_latent"]


@dataclass(frozen=True)
class LatentEnsemble:
    """Samples of one protein from the latent model, in the model's frame."""

    coords: np.ndarray  # (S, N, 3) float32, Å: g_φ(z_s), one structure per latent
    latents: np.ndarray  # (S, d) float32, latent units: the z_s stage 2 drew


@torch.no_grad()
def sample_structures(autoencoder: MapAutoencoder, prior: LatentDenoiser, protein: ProteinFeatures, n_samples: int,
                      generator: torch.Generator, slot: int = 0, batch_size: int = 64,
                      n_steps: int | None = None) -> LatentEnsemble:
    """``n_samples`` structures of ``protein`` (its reference placed in the model's frame): latents by DDIM from
    ``prior`` for protein slot ``slot`` (``n_steps``, default the prior's), each decoded by ``autoencoder``.
    Deterministic for a given generator state; both models must be on ``generator``'s device."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    latents = sample_latents(prior, n_samples, generator, slot, n_steps)  # (S, d)
    parts = []
    for start in range(0, n_samples, batch_size):
        z = latents[start:start + batch_size]
        batch = collate([protein] * len(z)).to(z.device)
        parts.append(autoencoder.decode(z, batch).cpu())
    return LatentEnsemble(torch.cat(parts).numpy(), latents.cpu().numpy())


@torch.no_grad()
def read_out_latent(autoencoder: MapAutoencoder, protein: ProteinFeatures,
                    volume: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The structure the autoencoder reads from one map: g_φ(μ(V)), the decoded posterior mean (no noise drawn).

    volume: (D, D, D) on the model's grid and frame, in the renderer's units (``ingest.to_model_units``);
    protein: the reference placed in the model's frame. Returns (coords (N, 3) float32 Å, model frame, μ (d,)).
    """
    device = autoencoder.sigma_data.device
    v = torch.as_tensor(np.asarray(volume, np.float32), device=device)[None]  # (1, D, D, D)
    mean, _ = autoencoder.encode(v)
    coords = autoencoder.decode(mean, collate([protein]).to(device))[0]
    return coords.cpu().numpy(), mean[0].cpu().numpy()
