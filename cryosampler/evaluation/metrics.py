"""Ensemble metrics: the paper's scoring of an ensemble (:func:`score_ensemble`: closest-sample RMSD per true
state and occupancy), coverage/precision beyond it, progress along the normal mode, RMSDs across differing atom
sets, and an ensemble's spread. The domain-motion benchmark's metrics are in :mod:`cryosampler.evaluation.coverage`,
stereochemical validity in :mod:`cryosampler.evaluation.validate`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from scipy.stats import wasserstein_distance

from cryosampler.io.correspondence import AtomMatchReport, match_atoms
from cryosampler.io.structure import Structure
from cryosampler.physics.superpose import optimal_rotation, pairwise_rmsd, rmsd_matrix, superpose

__all__ = ["score_ensemble", "EnsembleScore", "closest_sample_rmsd", "state_occupancy", "coverage_metrics",
           "ensemble_summary", "mode_projection", "matched_rmsd_matrix",
           "smallest_lossless_steps", "checked_coords", "EnsembleSpread",
           "ensemble_spread", "spread_parts", "cluster_sizes", "CLUSTER_CUTOFF", "STAYS_AT_REFERENCE",
           "progress_wasserstein", "chain_rmsds"]


def closest_sample_rmsd(rmsds: np.ndarray) -> np.ndarray:
    """The paper's metric: for each true state, the RMSD (Å) of the closest sample.

    rmsds: (S, K) RMSD of sample s to state k (``superpose.rmsd_matrix``) → (K,).
    """
    return rmsds.min(axis=0)


def state_occupancy(rmsds: np.ndarray) -> np.ndarray:
    """Fraction of samples nearer to each state than to the others; rmsds (S, K) → (K,), sums to 1.

    A sample exactly as near to two states counts for the first of them (argmin).
    """
    return np.bincount(rmsds.argmin(axis=1), minlength=rmsds.shape[1]) / rmsds.shape[0]


def coverage_metrics(rmsds: np.ndarray, thresholds: tuple[float, ...] = (0.5, 1.0, 2.0)) -> dict[str, float]:
    """Recall/precision coverage and matching of an ensemble (Å) from rmsds (S, K) (:func:`score_ensemble`).

    COV-R(δ): fraction of states with some sample within δ; MAT-R: mean over states of the min RMSD.
    COV-P(δ): fraction of samples within δ of some state; MAT-P: mean over samples of the min RMSD.
    """
    out = {"MAT-R": float(rmsds.min(axis=0).mean()), "MAT-P": float(rmsds.min(axis=1).mean())}
    for delta in thresholds:
        out[f"COV-R({delta:g})"] = float((rmsds.min(axis=0) <= delta).mean())
        out[f"COV-P({delta:g})"] = float((rmsds.min(axis=1) <= delta).mean())
    return out


def ensemble_summary(rmsds: np.ndarray) -> dict[str, float]:
    """Closest-sample RMSD (Å) and occupancy of states A and B from rmsds (S, 2) (``superpose.rmsd_matrix``)."""
    closest, occupancy = closest_sample_rmsd(rmsds), state_occupancy(rmsds)
    return {"closest_A": float(closest[0]), "closest_B": float(closest[1]),
            "occupancy_A": float(occupancy[0]), "occupancy_B": float(occupancy[1])}


@dataclass(frozen=True)
class EnsembleScore:
    """An ensemble scored against the true states A and B (:func:`score_ensemble`)."""

    rmsd: np.ndarray  # (S, 2) float64, Å: sample s to state A (column 0) and B (column 1)
    match: AtomMatchReport | None = None  # the atom matching, for samples of another atom set

    def summary(self) -> dict[str, float]:
        """closest_A, closest_B (Å) and occupancy_A, occupancy_B: one row of a runs table."""
        return ensemble_summary(self.rmsd)

    def per_sample(self, **keys) -> pd.DataFrame:
        """One row per sample: the ``keys`` (e.g. slot, seed; same in every row), then ``sample`` (index in
        the ensemble), ``rmsd_A``, ``rmsd_B`` (Å)."""
        return pd.DataFrame({**keys, "sample": np.arange(len(self.rmsd)), "rmsd_A": self.rmsd[:, 0],
                             "rmsd_B": self.rmsd[:, 1]})

    def progress(self) -> np.ndarray:
        """(S,) Å: each sample's place between the states, RMSD to A − RMSD to B (negative: nearer A; at A it is
        −d(A, B), at B +d(A, B))."""
        return self.rmsd[:, 0] - self.rmsd[:, 1]


def progress_wasserstein(samples: EnsembleScore, population: EnsembleScore) -> float:
    """1-D Wasserstein distance (Å) between two ensembles' distributions of :meth:`EnsembleScore.progress`, each
    sample weighted equally (scipy.stats.wasserstein_distance): how far the sampled distribution along the
    A → B coordinate lies from, e.g., the training maps' structures. 0 when they coincide."""
    return float(wasserstein_distance(samples.progress(), population.progress()))


def score_ensemble(samples: np.ndarray, states: np.ndarray, *, atoms: Structure | None = None,
                   reference: Structure | None = None) -> EnsembleScore:
    """The paper's scoring of an ensemble: every sample's RMSD to each true state after optimal superposition
    on all heavy atoms, read out as closest-sample RMSD per state and state occupancy.

    Every ensemble of the project (CryoSampler's, each baseline's, the ablation's) is scored here.

    Parameters
    ----------
    samples : (S, N, 3) Å, in the atom order of the states; or (S, M, 3) in the order of ``atoms``
    states : (2, N, 3) Å, states A and B
    atoms : Structure with M atoms, optional
        The samples' own atom set (e.g. a predictor's output); its atoms are matched to ``reference`` by
        (residue number, atom name) and only shared atoms are compared (:func:`matched_rmsd_matrix`).
    reference : Structure with N atoms, required with ``atoms``

    Returns
    -------
    EnsembleScore, with the (S, 2) RMSD matrix and, with ``atoms``, the atom match report.
    """
    states = checked_coords(states, "states", "KN", dtype=None)
    if len(states) != 2:
        raise ValueError(f"states must be the two true states A and B, shape (2, N, 3); got {states.shape}")
    if atoms is None:
        samples = checked_coords(samples, "samples", "SN", states.shape[1], dtype=None)
        return EnsembleScore(rmsd_matrix(samples, states))
    if reference is None:
        raise ValueError(f"scoring samples of {atoms.name} needs the states' reference structure to match atoms")
    return EnsembleScore(*matched_rmsd_matrix(samples, atoms, states, reference))


def chain_rmsds(coords: np.ndarray, target: np.ndarray, structure: Structure,
                on: str | None = None) -> dict[str, np.ndarray]:
    """Per-chain RMSD of a complex: each structure of ``coords`` (S, N, 3) Å superposed on ``target`` (N, 3) Å over
    the atoms of chains ``on`` (IDs joined by commas; default every atom), then the RMSD over each chain's atoms
    alone. Returns chain ID → (S,) float64 Å, chains in the order of ``structure`` (whose atom order both arrays
    follow)."""
    coords = checked_coords(coords, "coords", "SN", structure.n_atoms)
    target = checked_coords(target, "target", "N", structure.n_atoms)
    unknown = [c for c in ([] if on is None else on.split(",")) if c not in set(structure.chain_ids)]
    if unknown:
        raise ValueError(f"{structure.name}: no chain {unknown[0]!r} to superpose on; chains {structure.chain_id}")
    fixed = np.ones(structure.n_atoms, bool) if on is None else np.isin(structure.chain_ids, on.split(","))
    moved = np.stack([(x - x[fixed].mean(0)) @ optimal_rotation(x[fixed], target[fixed]).T + target[fixed].mean(0)
                      for x in coords])
    squared = np.sum((moved - target) ** 2, axis=-1)  # (S, N)
    return {chain: np.sqrt(squared[:, structure.chain_ids == chain].mean(axis=1))
            for chain in dict.fromkeys(structure.chain_ids)}


def checked_coords(array, name: str, axes: str, n_atoms: int | None = None, dtype=np.float64) -> np.ndarray:
    """``array`` as ``dtype`` (None: as given) of shape (*axes, 3), e.g. axes "SN" → (S, N, 3) with N =
    ``n_atoms`` if given."""
    array = np.asarray(array, dtype=dtype)
    shape = f"({', '.join(axes)}, 3)"
    if array.ndim != len(axes) + 1 or array.shape[-1] != 3 or n_atoms not in (None, array.shape[-2]):
        atoms = f" with {axes[-1]}={n_atoms}" if n_atoms is not None else ""
        raise ValueError(f"{name} must have shape {shape}{atoms}, got {array.shape}")
    return array


def mode_projection(samples: np.ndarray, reference: np.ndarray, mode: np.ndarray) -> np.ndarray:
    """Signed displacement (Å) of each sample along the normal mode, after superposition on the reference.

    p_s = (superpose(X_s, X_ref) − X_ref) · u / |u|, flattened over all 3N components, so the true states
    X_ref ± a·u (``nma.Motion``, unit u) project to ±a.

    Parameters
    ----------
    samples : (S, N, 3) Å
    reference : (N, 3) Å
    mode : (N, 3), any non-zero norm; same atom order as ``reference``

    Returns
    -------
    (S,) float64, Å
    """
    reference = checked_coords(reference, "reference", "N")
    samples = checked_coords(samples, "samples", "SN", len(reference))
    mode = checked_coords(mode, "mode", "N", len(reference))
    norm = np.linalg.norm(mode)
    if norm == 0:
        raise ValueError("mode is all zeros; pass the (N, 3) normal-mode direction")
    moved = np.stack([superpose(x, reference) for x in samples])  # (S, N, 3)
    return (moved - reference).reshape(len(samples), -1) @ (mode.ravel() / norm)


def matched_rmsd_matrix(samples: np.ndarray, other: Structure, states: np.ndarray,
                        reference: Structure) -> tuple[np.ndarray, AtomMatchReport]:
    """RMSDs (Å) between samples of another atom set (e.g. a predictor's output) and the true states.

    Atoms correspond by (residue number, atom name) (``correspondence.match_atoms``); atoms present on one side
    only are dropped, and the report says which. Residue numbering must therefore agree: a predictor that
    numbers from 1 must be given the sequence from the reference's first residue on.

    Parameters
    ----------
    samples : (S, M, 3) Å, atom order of ``other``
    other : Structure with M atoms
    states : (K, N, 3) Å, atom order of ``reference``
    reference : Structure with N atoms

    Returns
    -------
    rmsd : (S, K) float64, Å, after optimal superposition on the matched atoms
    report : AtomMatchReport (side a = ``reference``, side b = ``other``)
    """
    samples = checked_coords(samples, f"samples of {other.name}", "SM", other.n_atoms)
    states = checked_coords(states, f"states of {reference.name}", "KN", reference.n_atoms)
    idx_ref, idx_other, report = match_atoms(reference, other)
    if report.n_matched < 3:
        raise ValueError(f"{other.name} and {reference.name} share only {report.n_matched} atoms by (residue "
                         f"number, atom name); renumber {other.name}'s residues like {reference.name}'s ({report})")
    return rmsd_matrix(samples[:, idx_other], states[:, idx_ref]), report


def smallest_lossless_steps(sweep: pd.DataFrame, reference_steps: int, rmsd_tolerance: float = 0.05,
                            occupancy_tolerance: float = 0.125) -> int:
    """The fewest DDIM steps K that lose nothing against ``reference_steps`` on any protein.

    sweep: one row per (slot, steps) from ensembles drawn with the same seed, with columns slot, steps,
    closest_A, closest_B (Å), occupancy_A (:meth:`EnsembleScore.summary`). K "loses nothing" when, for every
    protein, the closest-sample RMSD to each state is at most ``rmsd_tolerance`` Å above the reference's and
    the occupancy of A is within ``occupancy_tolerance`` of it (0.125 = 2 of 16 samples; occupancy varies by
    about that much between sampling seeds). The answer is the smallest K that passes, with every larger K in
    the sweep passing too.
    """
    if reference_steps not in set(sweep["steps"]):
        raise ValueError(f"the sweep has no ensembles at the reference K = {reference_steps}")
    ref = sweep[sweep["steps"] == reference_steps].set_index("slot")
    passes = {}
    for steps, group in sweep.groupby("steps"):
        g = group.set_index("slot").loc[ref.index]
        passes[int(steps)] = bool(
            (g[["closest_A", "closest_B"]] <= ref[["closest_A", "closest_B"]] + rmsd_tolerance).all().all()
            and ((g["occupancy_A"] - ref["occupancy_A"]).abs() <= occupancy_tolerance).all())
    chosen = reference_steps
    for steps in sorted(passes, reverse=True):
        if not passes[steps]:
            break
        chosen = steps
    return chosen


# Å. Samples closer than this to each other (CA RMSD) are one conformation in `cryosampler sample`'s summary.
CLUSTER_CUTOFF = 2.0
# Å. An ensemble whose every sample is closer than this to its reference (all heavy atoms) has not left it.
STAYS_AT_REFERENCE = 0.5


def cluster_sizes(coords: np.ndarray, cutoff: float = CLUSTER_CUTOFF) -> tuple[int, ...]:
    """Sizes of the clusters of conformations ``coords`` (S, N, 3) Å, largest first: complete linkage on the
    pairwise RMSD after superposition, cut at ``cutoff`` Å, so that every two members of a cluster are within
    ``cutoff`` of each other."""
    coords = checked_coords(coords, "coords", "SN")
    if len(coords) == 1:
        return (1,)
    distances = squareform(pairwise_rmsd(coords), checks=False)
    labels = fcluster(linkage(distances, method="complete"), t=cutoff, criterion="distance")
    return tuple(sorted(np.bincount(labels)[1:].tolist(), reverse=True))


@dataclass(frozen=True)
class EnsembleSpread:
    """How far an ensemble's samples lie from their reference and from each other (:func:`ensemble_spread`)."""

    rmsd_to_reference: np.ndarray  # (S,) float64, Å, all atoms after superposition
    cluster_sizes: tuple[int, ...]  # samples per cluster at ``cutoff``, largest first
    cutoff: float  # Å

    @classmethod
    def from_parts(cls, parts: list[tuple[np.ndarray, np.ndarray]], cutoff: float = CLUSTER_CUTOFF) -> EnsembleSpread:
        """The spread of an ensemble from its batches' :func:`spread_parts`."""
        return cls(np.concatenate([r for r, _ in parts]), cluster_sizes(np.concatenate([c for _, c in parts]), cutoff),
                   cutoff)

    @property
    def stays_at_reference(self) -> bool:
        """Whether every sample is within :data:`STAYS_AT_REFERENCE` of the reference."""
        return bool(np.all(self.rmsd_to_reference < STAYS_AT_REFERENCE))

    def summary(self) -> str:
        """One line: the RMSD range to the reference and the clusters with their populations."""
        r = self.rmsd_to_reference
        n = len(self.cluster_sizes)
        sizes = ", ".join(str(k) for k in self.cluster_sizes)
        return (f"RMSD to the reference {r.min():.2f}–{r.max():.2f} Å (median {np.median(r):.2f} Å); "
                f"{n} cluster{'s' if n != 1 else ''} at {self.cutoff:g} Å CA RMSD, of {sizes} "
                f"sample{'s' if len(r) != 1 else ''}")


def spread_parts(samples: np.ndarray, reference: Structure) -> tuple[np.ndarray, np.ndarray]:
    """What :class:`EnsembleSpread` needs of a batch of samples (S, N, 3) Å in ``reference``'s atom order: each
    one's RMSD to the reference (S,) Å, all atoms after superposition, and its CA atoms (S, L, 3) Å; collected batch
    by batch, so that the whole ensemble need not be held."""
    samples = checked_coords(samples, "samples", "SN", reference.n_atoms)
    return rmsd_matrix(samples, reference.coords[None])[:, 0], samples[:, reference.backbone_index[:, 1]]


def ensemble_spread(samples: np.ndarray, reference: Structure, cutoff: float = CLUSTER_CUTOFF) -> EnsembleSpread:
    """The spread of samples (S, N, 3) Å in ``reference``'s atom order: each one's RMSD to the reference (all
    atoms, after superposition) and the clusters of their CA atoms at ``cutoff`` Å (:func:`cluster_sizes`)."""
    return EnsembleSpread.from_parts([spread_parts(samples, reference)], cutoff)
