"""Sampling atomic ensembles (A.2): DDIM in map space (eq. 9–11), then the read-out of eq. 12."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from cryosampler.device import resolve_device
from cryosampler.model.denoiser import CryoSampler, check_precision
from cryosampler.model.diffusion import ddim_sample, readout_time
from cryosampler.model.featurize import ProteinFeatures, collate
from cryosampler.reference import PlacedReference

__all__ = ["Ensemble", "iter_samples", "sample_ensemble", "iter_reference_samples"]


@dataclass(frozen=True)
class Ensemble:
    """Samples of one protein, in the model's common frame."""

    coords: np.ndarray  # (S, N, 3) float32, Å: X_final of eq. 12
    maps: np.ndarray  # (S, D, D, D) float32, map units, axes (x, y, z): σ_data · V_{t_K}


@torch.no_grad()
def iter_samples(model: CryoSampler, protein: ProteinFeatures, n_samples: int, generator: torch.Generator,
                 batch_size: int = 16, n_steps: int | None = None, progress: bool = False,
                 device: str | torch.device = "cpu", precision: str = "fp32") -> Iterator[Ensemble]:
    """Draw ``n_samples`` conformations of ``protein`` with K-step DDIM (eq. 9–11) and the read-out (eq. 12),
    yielding each batch of ``batch_size`` (the last may be smaller) as it is done.

    n_steps: K ≥ 2; default the model's (paper: 100).
    device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (:func:`~cryosampler.device.resolve_device`); the model
    is moved there, and ``generator`` must be a generator of that device (``torch.Generator(device)``).
    precision: the encoder's, "fp32" or "bf16" (:meth:`CryoSampler.atoms`).

    Memory is bounded by the batch, whatever ``n_samples``. The generator is consumed batch after batch, so
    the result is deterministic for a given generator state, batch size and model.
    """
    for name, value in (("n_samples", n_samples), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    device = resolve_device(device)
    # torch.Generator("cuda") reports device "cuda" with no index: it lives on the current GPU.
    if resolve_device(generator.device) != device:
        raise ValueError(f"generator is on {generator.device} but device is {device}; pass a generator there, "
                         f"torch.Generator({str(device)!r})")
    check_precision(precision)
    model.to(device).eval()
    grid, config = model.config.grid, model.config.diffusion
    if n_steps is not None:
        config = dataclasses.replace(config, n_steps=n_steps)
    chunks = [min(batch_size, n_samples - start) for start in range(0, n_samples, batch_size)]
    for size in tqdm(chunks, desc="sample", disable=not progress or len(chunks) == 1):
        batch = collate([protein] * size).to(device)

        # Called only by this chunk's ddim_sample, so the chunk's batch is the one meant (B023).
        def denoise_fn(v_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return model.denoise(v_t, t, batch, precision)[1] / model.sigma_data  # noqa: B023 (eq. 9)

        # The generator draws V_{t_1} on its own device, the one the model is on.
        v_final = ddim_sample(denoise_fn, (size,) + (grid.size,) * 3, generator, config, progress=progress)
        x_final = model.atoms(v_final, readout_time(size, device=device), batch, precision)  # eq. 12
        yield Ensemble(x_final.cpu().numpy(), (v_final * model.sigma_data).cpu().numpy())


def sample_ensemble(model: CryoSampler, protein: ProteinFeatures, n_samples: int, generator: torch.Generator,
                    batch_size: int = 16, n_steps: int | None = None, progress: bool = False,
                    device: str | torch.device = "cpu", precision: str = "fp32") -> Ensemble:
    """All batches of :func:`iter_samples` in one Ensemble (S = ``n_samples``)."""
    batches = list(iter_samples(model, protein, n_samples, generator, batch_size, n_steps, progress, device,
                                precision))
    return Ensemble(np.concatenate([b.coords for b in batches]), np.concatenate([b.maps for b in batches]))


    # for a model without template (each protein on its own principal axes)


def iter_reference_samples(model: CryoSampler, reference: PlacedReference, n_samples: int, seed: int,
                           batch_size: int = 16, n_steps: int | None = None, progress: bool = False,
                           device: str | torch.device = "cpu",
                           precision: str = "fp32") -> Iterator[tuple[np.ndarray, Ensemble]]:
    """:func:`iter_samples` on ``device`` for a placed reference, seeded with ``seed``; each batch comes with
    its coordinates in the reference's own frame: (coords (B, N, 3) float64 Å, the batch's Ensemble in the
    model's frame)."""
    device = resolve_device(device)
    generator = torch.Generator(device).manual_seed(seed)
    back = reference.place.inverse()
    for batch in iter_samples(model, reference.protein, n_samples, generator, batch_size, n_steps, progress,
                              device, precision):
        yield back.apply(batch.coords.astype(np.float64)), batch
