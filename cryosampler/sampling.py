"""Sampling atomic ensembles (A.2): DDIM in map space, then the read-out of eq. 12."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from cryosampler.device import check_precision, resolve_device
from cryosampler.model.diffusion import DiffusionConfig, add_noise, alpha_sigma, ddim_sample, readout_time, time_at_noise
from cryosampler.model.featurize import ProteinFeatures, collate, featurize
from cryosampler.physics.frame import (MAX_FIT_RMSD, RigidTransform, check_template_fit, map_to_model_frame, placement,
                               principal_placement)
from cryosampler.ingest import map_model_correlation, model_scale
from cryosampler.model.denoiser import CryoSampler, ModelConfig
from cryosampler.physics.render import check_in_box
from cryosampler.io.structure import Structure

__all__ = ["Ensemble", "PlacedReference", "iter_samples", "sample_ensemble", "read_out", "read_out_noised",
           "matched_time", "fit_map",
           "MapFit", "prepare_reference", "check_takes", "iter_reference_samples"]


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

        def denoise_fn(v_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return model.denoise(v_t, t, batch, precision)[1] / model.sigma_data  # eq. 9

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


# Voxels where the reference renders below this fraction of its peak hold no protein: the map's noise there.
EMPTY_FRACTION = 1e-3
# Fewer such voxels than this (a masked or solvent-flattened map, whose empty voxels are exactly 0) give no
# noise estimate: the map is then read as clean (t = 0).
MIN_EMPTY_VOXELS = 1000


def matched_time(v: torch.Tensor, rendered: torch.Tensor, config: DiffusionConfig) -> torch.Tensor:
    """The diffusion time at which a given normalised map (V / σ_data) is as noisy as a training V_t.

    v, rendered: (D, D, D), the map and the reference rendered on the same grid. The noise ν is the standard
    deviation of ``v`` over voxels where the rendering is below ``EMPTY_FRACTION`` of its peak and the map is
    not exactly 0 (exact zeros are padding: the parts of the grid outside a user's box, corners rotated out
    of it, or a mask), and t solves σ_t / α_t = ν (``diffusion.time_at_noise``). Returns a 0-d tensor; 0 when
    fewer than ``MIN_EMPTY_VOXELS`` voxels qualify.
    """
    empty = (rendered < EMPTY_FRACTION * rendered.max()) & (v != 0)
    if int(empty.sum()) < MIN_EMPTY_VOXELS:
        return torch.zeros((), dtype=v.dtype)
    return time_at_noise(v[empty].std().cpu(), config).to(v.dtype)


@torch.no_grad()
def read_out(model: CryoSampler, protein: ProteinFeatures, volume: np.ndarray | torch.Tensor,
             device: str | torch.device = "cpu", precision: str = "fp32") -> np.ndarray:  # eq. 12
    """The atomic model the trained encoder assigns to one given map: X = f_θ(α_t V / σ_data, SNR_t, X_ref)
    at the t whose noise matches the map's own (:func:`matched_time`).

    The map is taken as a noisy V_t, so α_t V / σ_data = α_t V_0 / σ_data + σ_t ε as in training; a clean
    map gives t ≈ 0, eq. 12's read-out. Reading noisy maps at t = 0 instead was clearly worse on noisy
    maps (benchmarks/fit_accuracy.py; numbers in the README, "Use it on your own maps").

    volume: (D, D, D) on the model's grid and frame, in the renderer's density units (a user's map scaled by
    ``ingest.model_scale``); protein: the reference placed in the model's frame. Returns (N, 3) float32 Å,
    model frame. No noise is drawn: the same map always gives the same model.
    """
    device = resolve_device(device)
    model.to(device).eval()
    v = torch.as_tensor(np.asarray(volume, np.float32), device=device)[None] / model.sigma_data  # (1, D, D, D)
    batch = collate([protein]).to(device)
    t = matched_time(v[0], model.render(batch.ref_coords, batch)[0], model.config.diffusion).reshape(1).to(device)
    alpha, _ = alpha_sigma(t, model.config.diffusion)
    return model.atoms(alpha * v, t, batch, precision)[0].cpu().numpy()


@torch.no_grad()
def read_out_noised(model: CryoSampler, protein: ProteinFeatures, v0: torch.Tensor, t: float,
                    generator: torch.Generator) -> np.ndarray:
    """What the encoder reads from a known map at one noise level: X̂_0 = f_θ(V_t, SNR_t, X_ref) with V_t the
    map ``v0`` noised to time ``t`` (eq. 1, noise from ``generator``). The probes in benchmarks/ sweep t to find
    where a model stops seeing a state that sampling never reaches.

    v0: (D, D, D) on the model's grid and frame (CPU); protein: the reference placed in the model's frame.
    Returns (N, 3) float64 Å, model frame.
    """
    time = torch.tensor([t])
    v_t, _ = add_noise(v0[None], time, model.sigma_data, generator)  # eq. 1
    return model.atoms(v_t, time, collate([protein]))[0].double().numpy()


@dataclass(frozen=True)
class MapFit:
    """The model read out of one map (:func:`fit_map`)."""

    coords: np.ndarray  # (N, 3) float64, Å, the reference's (the map's) frame
    correlation_reference: float  # map–model Pearson r of the reference, at the model's resolution
    correlation_fitted: float  # the same for the fitted model


def fit_map(model: CryoSampler, reference: Structure, placed: "PlacedReference", volume: np.ndarray,
            device: str | torch.device = "cpu", precision: str = "fp32") -> MapFit:
    """The atomic model ``model`` assigns to a map of ``reference``'s protein (``cryosampler fit``).

    volume: (D, D, D) on the model's grid, axis-aligned in the reference's frame and centred where the
    model's box is (``ingest.ingest_map`` with centre = the reference's centroid gives it). The map is
    turned into the model's frame, scaled to the renderer's units (``ingest.model_scale``) and read out
    (:func:`read_out`); the result goes back to the reference's frame.
    """
    grid, numbers = model.config.grid, reference.atomic_numbers
    back = placed.place.inverse()
    centre = back.apply(np.zeros(3))
    in_model = map_to_model_frame(volume, placed.place)
    scale = model_scale(in_model, placed.place.apply(reference.coords), numbers, grid)
    fitted = back.apply(read_out(model, placed.protein, scale * in_model, device, precision).astype(np.float64))
    return MapFit(fitted, map_model_correlation(volume, reference.coords, numbers, grid, centre),
                  map_model_correlation(volume, fitted, numbers, grid, centre))


@dataclass(frozen=True)
class PlacedReference:
    """A user's reference structure placed in the model's frame and checked against the model."""

    protein: ProteinFeatures  # features at the placed coordinates
    place: RigidTransform  # input frame → model frame
    fit_rmsd: float  # Å, CA RMSD to the model's template after superposition (frame.template_fit_rmsd); NaN
    # for a model without template (each protein on its own principal axes)


def prepare_reference(model: CryoSampler, structure: Structure, max_fit_rmsd: float = MAX_FIT_RMSD,
                      source: str | None = None) -> PlacedReference:
    """Place a user's reference in the model's frame and check the model can take it.

    source: name for error messages (the file; default the structure's name).

    Raises ValueError naming the problem: too few residue numbers shared with the model's template, a CA
    fit to the template worse than ``max_fit_rmsd`` Å (pass ``math.inf`` to accept any), atoms outside the
    map box, or more tokens than the model has slots for.
    """
    source = structure.name if source is None else source
    if model.template is None:  # several proteins, each on its own principal axes: nothing to fit against
        fit, place = math.nan, principal_placement(structure)
    else:
        fit = check_template_fit(structure, model.template, max_fit_rmsd, source)
        place = placement(structure, model.template)
    protein = featurize(structure, place.apply(structure.coords), tokens=model.config.encoder.tokens)
    check_takes(model.config, protein, source)
    return PlacedReference(protein, place, fit)


def check_takes(config: ModelConfig, protein: ProteinFeatures, source: str) -> None:
    """ValueError naming ``source`` unless a model of ``config`` can take ``protein`` (placed in its frame): every
    atom in the map box, and no more tokens than the encoder has slots for."""
    enc, grid = config.encoder, config.grid
    check_in_box(protein.ref_coords[None], grid, names=[source],
                 advice=f"the protein does not fit this model's {grid.box_length:.0f} Å box")
    n_tokens = protein.token_position.shape[0]
    if enc.volume_features == "global" and n_tokens > enc.max_tokens:
        raise ValueError(f"{source}: {n_tokens} {enc.tokens} tokens, but this model takes at most "
                         f"{enc.max_tokens}")


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
