"""A simulated two-state complex whose truth is known (notebook 09): haemoglobin's α1β1 dimer, chains A and B of the
deposited model 5ME2 (the ccpem-utils test data of :mod:`cryosampler.experiments.experimental_maps`), whose β
subunit turns as a rigid body about the line between the two subunits' centres and moves away from α. The deposited
dimer is the "closed" end of the path, the turned one the "open" end, so notebook 07's scoring of a path
(:func:`cryosampler.experiments.user_maps.sampling_scores`) applies as it is; this module adds the per-chain view.

Coordinates are in Å throughout.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from cryosampler.evaluation.metrics import chain_rmsds
from cryosampler.io.structure import Structure

__all__ = ["DIMER_CHAINS", "MOVING_CHAIN", "FIXED_CHAIN", "TURN", "SEPARATION", "PATH_FRAMES", "subunit_path",
           "chain_table", "CHAIN_FOOTNOTE", "chain_fit_table"]

DIMER_CHAINS = "A,B"  # α1 and β1 of 5ME2
MOVING_CHAIN = "B"
# Per-chain RMSDs superpose on α, which keeps its place in the maps (as a consensus refinement aligns particles on
# the rigid part); superposed on both chains, a turn of β would show as a move of α too.
FIXED_CHAIN = "A"
# The open end: β turned by TURN degrees about the α–β centre line and moved SEPARATION Å along it, apart enough for
# "both ends reached" to mean something and moved out far enough not to pack into α (docs/decisions.md).
TURN = 45.0  # degrees
SEPARATION = 5.0  # Å
PATH_FRAMES = 41  # frames from the closed to the open end, the turn and the move in equal steps


def subunit_path(structure: Structure, moving: str = MOVING_CHAIN, turn: float = TURN,
                 separation: float = SEPARATION, n_frames: int = PATH_FRAMES) -> np.ndarray:
    """The path from ``structure`` (frame 0) to chain ``moving`` turned by ``turn`` degrees about the line from the
    other chains' centre to its own and moved ``separation`` Å along that line (last frame): (n_frames, N, 3)
    float64, Å, in the atom order of ``structure``; the other chains stay where they are."""
    chains = structure.chain_ids
    if moving not in set(chains) or len(set(chains)) < 2:
        raise ValueError(f"{structure.name}: chains {structure.chain_id}; the moving chain {moving!r} must be one of "
                         "two or more")
    if n_frames < 2:
        raise ValueError(f"n_frames must be at least 2, got {n_frames}")
    mover = chains == moving
    centre = structure.coords[mover].mean(0)
    axis = centre - structure.coords[~mover].mean(0)
    axis /= np.linalg.norm(axis)
    frames = np.repeat(structure.coords[None], n_frames, axis=0)
    for f, s in enumerate(np.linspace(0.0, 1.0, n_frames)):
        rotation = Rotation.from_rotvec(np.radians(s * turn) * axis).as_matrix()
        frames[f, mover] = (structure.coords[mover] - centre) @ rotation.T + centre + s * separation * axis
    return frames


def _per_chain(coords: np.ndarray, states: dict[str, np.ndarray], structure: Structure) -> dict[str, np.ndarray]:
    """Per chain, each structure's RMSD to the closed and the open end: chain → (S, 2) Å (:func:`chain_rmsds`)."""
    to_ends = [chain_rmsds(coords, states[end], structure, on=FIXED_CHAIN) for end in ("closed", "open")]
    return {chain: np.stack([to_ends[0][chain], to_ends[1][chain]], axis=1) for chain in to_ends[0]}


def chain_table(ensembles: dict[str, np.ndarray], states: dict[str, np.ndarray], training: np.ndarray,
                structure: Structure) -> pd.DataFrame:
    """The ensembles seen chain by chain: one row per ensemble and chain.

    ensembles: name → samples (S, N, 3) Å; states: {"closed": (N, 3), "open": (N, 3)} Å; training: (F, N, 3) Å, the
    structures of the training maps. Each chain's RMSD is over its own atoms after superposing the complex on
    :data:`FIXED_CHAIN` (:func:`~cryosampler.evaluation.metrics.chain_rmsds`). Columns: ensemble, chain,
    ends_apart (Å, the chain's RMSD between the two ends), closest_closed and closest_open (Å), occupancy_closed
    (share of samples whose chain is nearer its closed pose; NaN for a chain that is the same at both ends) and
    maps_occupancy_closed (the same share among the training maps' structures).
    """
    ends = _per_chain(np.stack([states["closed"]]), states, structure)
    maps = _per_chain(training, states, structure)
    rows = []
    for name, samples in ensembles.items():
        for chain, d in _per_chain(samples, states, structure).items():
            apart = float(ends[chain][0, 1])
            moves = apart > 0.5  # Å: a chain the same at both ends has no population of its own
            rows.append({"ensemble": name, "chain": chain, "ends_apart": apart, "closest_closed": float(d[:, 0].min()),
                         "closest_open": float(d[:, 1].min()),
                         "occupancy_closed": float(np.mean(d[:, 0] < d[:, 1])) if moves else np.nan,
                         "maps_occupancy_closed": float(np.mean(maps[chain][:, 0] < maps[chain][:, 1]))
                         if moves else np.nan})
    return pd.DataFrame(rows)


CHAIN_FOOTNOTE = ("One row per ensemble and chain. Each chain's RMSD (heavy atoms, Å) is over its own atoms after "
                  "superposing the complex on chain A (α, which keeps its place in the maps) of the state. "
                  "ends_apart: the chain's RMSD between the closed and the open end; closest_*: the closest "
                  "sample to each end; occupancy_closed: share of samples whose chain is nearer its closed pose, "
                  "beside the same share among the training maps' structures "
                  "(maps_occupancy_closed); empty for a chain that does not move.")


def chain_fit_table(models: dict[str, np.ndarray], truths: np.ndarray, frames: list[int],
                    structure: Structure) -> pd.DataFrame:
    """Single-map read-out chain by chain: one row per map and chain.

    models: kind (e.g. "fitted", "refined") → (M, N, 3) Å, one model per map; truths: (M, N, 3) Å, each map's true
    structure; frames: (M,) the maps' path frames, for the rows. Columns: frame, chain, then rmsd_<kind> per kind (Å,
    the chain's RMSD to the map's true structure after superposing the complex on :data:`FIXED_CHAIN`,
    :func:`chain_rmsds`).
    """
    rows = []
    for m, frame in enumerate(frames):
        scores = {kind: chain_rmsds(coords[m][None], truths[m], structure, on=FIXED_CHAIN)
                  for kind, coords in models.items()}
        for chain in dict.fromkeys(structure.chain_ids):
            rows.append({"frame": frame, "chain": chain,
                         **{f"rmsd_{kind}": float(score[chain][0]) for kind, score in scores.items()}})
    return pd.DataFrame(rows)

