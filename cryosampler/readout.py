"""The read-out of one given map (eq. 12 without sampling): the atomic model a trained encoder assigns to a map,
read at the diffusion time whose noise matches the map's own (``cryosampler fit``), optionally read again with the
reference replaced by the read-out ("recycling") and refined into the map (``refine``); and the probes' read-out
of a known map noised to a chosen time."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from cryosampler.device import resolve_device
from cryosampler.ingest import map_model_correlation, to_model_units
from cryosampler.latent_sampling import read_out_latent
from cryosampler.io.structure import Structure
from cryosampler.model.denoiser import CryoSampler
from cryosampler.model.diffusion import DiffusionConfig, add_noise, alpha_sigma, time_at_noise
from cryosampler.model.featurize import ProteinFeatures, collate
from cryosampler.model.latent_model import LatentModel
from cryosampler.reference import PlacedReference
from cryosampler.refine import RefineConfig, refine

if TYPE_CHECKING:
    from cryosampler.physics.nma_fit import NmaFitConfig

__all__ = ["matched_time", "read_out", "read_out_noised", "MapFit", "fit_map", "EMPTY_FRACTION", "MIN_EMPTY_VOXELS"]


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
    maps (benchmarks/fit_accuracy.py; numbers in docs/own-maps.md).

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

    coords: np.ndarray  # (N, 3) float64, Å, the reference's (the map's) frame: the fitted model
    correlation_reference: float  # map–model Pearson r of the reference, at the model's resolution
    correlation_fitted: float  # the same for the fitted model
    readout: np.ndarray  # (N, 3) float64, Å, the map's frame: the read-out before refinement (coords without it)
    correlation_readout: float  # r of the read-out, at the model's resolution
    start: str = "read-out"  # what the fitted model was refined from: "read-out" or "normal modes"


def fit_map(model: CryoSampler | LatentModel, reference: Structure, placed: PlacedReference, volume: np.ndarray,
            device: str | torch.device = "cpu", precision: str = "fp32", recycle: int = 0,
            refinement: RefineConfig | None = None, resolution: float | None = None,
            normal_modes: NmaFitConfig | None = None) -> MapFit:
    """The atomic model ``model`` assigns to a map of ``reference``'s protein (``cryosampler fit``).

    volume: (D, D, D) on the model's grid, axis-aligned in the reference's frame and centred where the
    model's box is (``ingest.ingest_map`` with centre = the reference's centroid gives it). The map is
    turned into the model's frame, scaled to the renderer's units (``ingest.model_scale``) and read out
    (:func:`read_out`; a latent model decodes the map's posterior mean, ``latent_sampling.read_out_latent``);
    the result goes back to the reference's frame.

    recycle: read the map out again this many times, each time with the reference's coordinates replaced by the
    last read-out (the model sees the protein placed where it last put it). refinement: if given, the read-out is
    refined into ``volume`` (``refine.refine``) on the model's grid, rendered at ``resolution`` Å (the map's own;
    default the model's). normal_modes (with refinement): the reference is also fitted along its normal modes
    (``physics.nma_fit``) and refined, and the refined model whose map–model correlation at ``resolution`` is the
    higher is kept: the classical fit reaches motions the encoder misses (docs/results.md, "Fitting methods").
    """
    if not (isinstance(recycle, int) and recycle >= 0):
        raise ValueError(f"recycle must be an int ≥ 0 (read-outs after the first), got {recycle!r}")
    if normal_modes is not None and refinement is None:
        raise ValueError("normal_modes needs refinement: the normal-mode fit is only a start for it")
    grid, numbers = model.config.grid, reference.atomic_numbers
    back = placed.place.inverse()
    centre = back.apply(np.zeros(3))
    in_model, _ = to_model_units(volume, placed.place, reference.coords, numbers, grid)
    protein = placed.protein
    if isinstance(model, LatentModel):
        model.to(resolve_device(device)).eval()
    for _ in range(1 + recycle):
        if isinstance(model, LatentModel):
            coords = read_out_latent(model.autoencoder, protein, in_model)[0]  # (N, 3) float32 Å, model frame
        else:
            coords = read_out(model, protein, in_model, device, precision)  # (N, 3) float32 Å, model frame
        protein = dataclasses.replace(protein, ref_coords=torch.as_tensor(coords))
    readout = back.apply(coords.astype(np.float64))
    correlation_readout = map_model_correlation(volume, readout, numbers, grid, centre)
    reference_r = map_model_correlation(volume, reference.coords, numbers, grid, centre)
    if refinement is None:
        return MapFit(readout, reference_r, correlation_readout, readout, correlation_readout)
    on = grid if resolution is None else dataclasses.replace(grid, resolution=float(resolution))
    starts = {"read-out": readout - centre}
    if normal_modes is not None:
        from cryosampler.physics.nma_fit import nma_fit  # ProDy is slow to import: only this start needs it

        starts["normal modes"] = nma_fit(reference, reference.coords - centre, volume, on, normal_modes).coords
    fits = {name: refine(start, reference, volume, on, refinement).coords + centre for name, start in starts.items()}
    best = max(fits, key=lambda name: map_model_correlation(volume, fits[name], numbers, on, centre))
    return MapFit(fits[best], reference_r, map_model_correlation(volume, fits[best], numbers, grid, centre), readout,
                  correlation_readout, best)
