"""Ensembles, read-outs and traversals of the latent model family (issue 36): sample = latent DDIM (stage 2) → decode
(stage 1), one structure per latent; read-out = encode a map → decode its posterior mean; where the samples went
against the training maps' weights; and paths through the latent space (``cryosampler traverse``): a straight line
between two latents, or along a principal component of the training maps' latents, decoded frame by frame."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from cryosampler.device import resolve_device
from cryosampler.ingest import to_model_units
from cryosampler.io.structure import Structure
from cryosampler.model.autoencoder import MapAutoencoder
from cryosampler.model.featurize import ProteinFeatures, collate
from cryosampler.model.latent_diffusion import LatentDenoiser, sample_latents
from cryosampler.model.latent_model import LatentModel
from cryosampler.reference import PlacedReference

__all__ = ["LatentEnsemble", "sample_structures", "read_out_latent", "iter_reference_latent_samples",
           "latent_populations", "latent_path", "principal_path", "map_principal_path", "encode_map",
           "decode_in_reference_frame"]


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


def iter_reference_latent_samples(model: LatentModel, reference: PlacedReference, n_samples: int, seed: int,
                                  slot: int = 0, batch_size: int = 64, n_steps: int | None = None,
                                  device: str | torch.device = "cpu") -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``n_samples`` structures of a placed reference from a latent model (:func:`sample_structures`), seeded with
    ``seed``, in batches of ``batch_size``: (coords (B, N, 3) float64 Å in the reference's own frame, latents
    (B, d)). All latents are drawn first (one DDIM run over all samples), then decoded batch by batch."""
    device = resolve_device(device)
    model.to(device).eval()
    generator = torch.Generator(device).manual_seed(seed)
    latents = sample_latents(model.prior, n_samples, generator, slot, n_steps)  # (S, d)
    back = reference.place.inverse()
    for start in range(0, n_samples, batch_size):
        z = latents[start:start + batch_size]
        coords = model.decode(z, reference.protein, batch_size).numpy()
        yield back.apply(coords.astype(np.float64)), z.cpu().numpy()


def _groups(points: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """k-means labels (M,) of ``points`` (M, d), k groups, deterministic: seeded at the heaviest point, then each
    next seed the point farthest from those chosen; 20 Lloyd iterations. Labels are ordered by each group's first
    point."""
    seeds = [int(np.argmax(weights))]
    while len(seeds) < k:
        distance = np.min(((points[:, None] - points[seeds][None]) ** 2).sum(-1), axis=1)
        seeds.append(int(np.argmax(distance)))
    centres = points[seeds]
    for _ in range(20):
        labels = ((points[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.stack([points[labels == g].mean(0) if (labels == g).any() else centres[g] for g in range(k)])
    order = {g: i for i, g in enumerate(dict.fromkeys(labels.tolist()))}
    return np.array([order[g] for g in labels])


def latent_populations(model: LatentModel, latents: np.ndarray, slot: int = 0,
                       groups: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Where the samples went against the populations asked for: each sample's latent is assigned to the nearest
    training map of protein slot ``slot`` (Euclidean, in the prior's standardised units), and the maps are pooled
    into ``groups`` k-means groups of their latents (fewer if there are fewer maps).

    latents: (S, d). Returns (per map: map index, group, weight share, sample share; per group: maps, weight share,
    sample share), shares over the slot's maps, each column summing to 1.
    """
    index = np.flatnonzero(model.map_protein.cpu().numpy() == slot)
    if index.size == 0:
        raise ValueError(f"protein slot {slot} has no training maps in this model")
    standardise = model.prior.standardise
    points = standardise(model.map_mean[index].cpu()).numpy().astype(np.float64)  # (M, d)
    weights = model.map_weight[index].cpu().numpy().astype(np.float64)
    samples = standardise(torch.as_tensor(latents, dtype=torch.float32)).numpy().astype(np.float64)  # (S, d)
    nearest = ((samples[:, None] - points[None]) ** 2).sum(-1).argmin(1)  # (S,)
    labels = _groups(points, weights, min(groups, len(index)))
    per_map = pd.DataFrame({"map": index, "group": labels + 1, "weight_share": weights / weights.sum(),
                            "sample_share": np.bincount(nearest, minlength=len(index)) / len(samples)})
    per_group = per_map.groupby("group").agg(maps=("map", "size"), weight_share=("weight_share", "sum"),
                                             sample_share=("sample_share", "sum")).reset_index()
    return per_map, per_group


def latent_path(start: np.ndarray, end: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` ≥ 2 latents evenly spaced on the straight line from ``start`` to ``end`` (both (d,)), both included:
    (latents (n, d) float64, t (n,) from 0 to 1), z(t) = (1 − t) start + t end.

    Linear, not spherical: spherical interpolation keeps the norm of Gaussian noise vectors, which concentrate on a
    sphere; the endpoints here are posterior means of maps, points of the data's own latent distribution, and the
    straight line between them is the shortest path the decoder can be asked about, with frames evenly spaced.
    """
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    if start.ndim != 1 or start.shape != end.shape:
        raise ValueError(f"start and end must be latents of one shape (d,), got {start.shape} and {end.shape}")
    if n < 2:
        raise ValueError(f"a path needs n ≥ 2 frames, got {n}")
    t = np.linspace(0.0, 1.0, n)
    return (1.0 - t)[:, None] * start + t[:, None] * end, t


def principal_path(points: np.ndarray, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` ≥ 2 points evenly spaced along the ``k``-th (from 1) principal component of ``points`` (M, d), through
    their mean, from the smallest to the largest projection of a point on it: (path (n, d) float64, projections
    (n,), the path's positions along the component, in the points' units).

    The component's sign is fixed so that its largest entry in absolute value is positive (an SVD's sign is
    arbitrary). ValueError for k < 1, k > d, or k > M − 1 (M points vary along at most M − 1 directions).
    """
    points = np.asarray(points, np.float64)
    m, d = points.shape
    if not 1 <= k <= d:
        raise ValueError(f"principal component {k} does not exist: the points have {d} dimensions (1 to {d})")
    if k > m - 1:
        raise ValueError(f"principal component {k} does not exist: {m} points vary along at most {m - 1} "
                         f"direction{'s' * (m != 2)}")
    if n < 2:
        raise ValueError(f"a path needs n ≥ 2 frames, got {n}")
    mean = points.mean(0)
    _, _, vt = np.linalg.svd(points - mean, full_matrices=False)  # rows: components, by decreasing variance
    axis = vt[k - 1] * np.sign(vt[k - 1][np.argmax(np.abs(vt[k - 1]))])  # (d,)
    projection = (points - mean) @ axis  # (M,)
    s = np.linspace(projection.min(), projection.max(), n)
    return mean + s[:, None] * axis, s


def map_principal_path(model: LatentModel, k: int, n: int, slot: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`principal_path` of the latent means of protein slot ``slot``'s training maps, in the prior's standardised
    units (each latent dimension at unit spread, so that no dimension dominates the components by its scale alone):
    (latents (n, d) float64 in latent units, what the decoder takes; projections (n,), standardised units)."""
    index = np.flatnonzero(model.map_protein.cpu().numpy() == slot)
    if index.size == 0:
        raise ValueError(f"protein slot {slot} has no training maps in this model")
    points = model.prior.standardise(model.map_mean[index].cpu()).double().numpy()  # (M, d)
    path, s = principal_path(points, k, n)
    latents = model.prior.destandardise(torch.as_tensor(path, dtype=torch.float32)).double().numpy()
    return latents, s


@torch.no_grad()
def encode_map(model: LatentModel, reference: Structure, placed: PlacedReference, volume: np.ndarray) -> np.ndarray:
    """The posterior mean μ (d,) float64 of a user's map: ``volume`` (D, D, D) ingested around ``reference`` as
    ``cryosampler fit`` ingests it (``ingest.ingest_map`` centred where the model's box is, in the reference's
    frame), turned into the model's frame and units (``ingest.to_model_units``) and encoded."""
    in_model, _ = to_model_units(volume, placed.place, reference.coords, reference.atomic_numbers, model.config.grid)
    return model.encode(torch.from_numpy(in_model)[None])[0].double().cpu().numpy()


def decode_in_reference_frame(model: LatentModel, reference: PlacedReference, latents: np.ndarray,
                              batch_size: int = 64) -> np.ndarray:
    """Latents (S, d) → structures (S, N, 3) float64 Å in the reference's own frame: decoded on the model's device in
    batches of ``batch_size`` (``LatentModel.decode``), then moved back by the inverse of the reference's placement."""
    z = torch.as_tensor(np.asarray(latents), dtype=torch.float32)
    coords = model.decode(z, reference.protein, batch_size).numpy().astype(np.float64)
    return reference.place.inverse().apply(coords)
