"""Normal-mode flexible fitting (as NMFF and iMODFIT do it): a structure is moved along its lowest ANM modes
(``physics.nma``), with amplitudes chosen to maximise the map–model correlation of its rendering
(``physics.render``, at the grid's resolution), then the modes are recomputed at the moved structure for the next
round. A classical baseline for ``cryosampler fit``: it needs no trained model, only the reference placed in the map.

    X(a) = X₀ + √N Σ_k a_k u_k,    a = argmax r(V, F(X(a)))

with u_k the unit-norm modes (3N components), so a_k is the RMSD (Å) that mode k alone moves the atoms. Linear
modes bend bonds at large amplitude; ``refine.refine`` restores the reference's local geometry afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from cryosampler.io.grid import MapGrid
from cryosampler.io.structure import Structure
from cryosampler.physics.correlation import fit_target, pearson
from cryosampler.physics.nma import MotionConfig, anm_modes
from cryosampler.physics.render import render_density

__all__ = ["NmaFitConfig", "NMA_FIT_PRESETS", "NmaFit", "nma_fit"]

# Evaluations of the correlation per L-BFGS iteration, at most (its strong-Wolfe line search).
MAX_LINE_SEARCH = 20


@dataclass(frozen=True)
class NmaFitConfig:
    """Modes, rounds and steps of a normal-mode fit."""

    modes: int = 10  # lowest non-trivial ANM modes fitted per round
    # Rounds of modes, each computed at the structure the previous round reached. More rounds raised r but moved
    # adenylate kinase away from its open state on noisy maps (docs/results.md, "Fitting methods").
    rounds: int = 1
    steps: int = 20  # L-BFGS iterations per round
    margin: float = 15.0  # Å of map kept around the start structure on every side (io.grid.crop_around)
    motion: MotionConfig = MotionConfig()  # ANM cutoff and spring constant

    def __post_init__(self):
        for name in ("modes", "rounds"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"NmaFitConfig.{name} must be a positive int, got {value!r}")
        if not (isinstance(self.steps, int) and self.steps >= 0):
            raise ValueError(f"NmaFitConfig.steps must be an int ≥ 0, got {self.steps!r}")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"NmaFitConfig.margin must be a finite number ≥ 0, got {self.margin!r}")


NMA_FIT_PRESETS = {
    "default": NmaFitConfig(),
    "smoke": NmaFitConfig(modes=3, rounds=1, steps=3),  # tests: the same code, a few steps
}


@dataclass(frozen=True)
class NmaFit:
    """A structure fitted along its normal modes."""

    coords: np.ndarray  # (N, 3) float64, Å, the grid's frame
    amplitudes: np.ndarray  # (rounds, modes) float64, Å: a of each round, along that round's modes
    log: pd.DataFrame  # one row per step: round, step, correlation (r where the step starts)
    correlation_start: float  # r of the start structure with the map (cropped box, grid's resolution)
    correlation_end: float  # the same for the fitted structure


def nma_fit(structure: Structure, coords0: np.ndarray, volume: np.ndarray, grid: MapGrid,
            config: NmaFitConfig = NmaFitConfig()) -> NmaFit:
    """Fit ``structure``'s protein into a map along its lowest normal modes (module docstring).

    Parameters
    ----------
    structure : the protein (atom names, residues, Z); its coordinates are not used.
    coords0 : (N, 3) Å, the start, in the grid's frame and ``structure``'s atom order; the first round's modes
        are computed here.
    volume : (D, D, D) float, axes (x, y, z), on ``grid``; any units and offset (not constant).
    grid : the map's grid; the model is rendered at grid.resolution.

    Deterministic: the same inputs give the same structure.
    """
    coords0, target, box, shift, weights = fit_target(structure, coords0, volume, grid, config.margin)

    def correlation(coords: torch.Tensor) -> torch.Tensor:
        return pearson(target, render_density(coords[None], weights, box, check_bounds=False))[0]

    coords = coords0 - shift  # (N, 3) Å, the cube's frame
    with torch.no_grad():
        start = float(correlation(torch.tensor(coords, dtype=torch.float32)))
    rows, amplitudes, end = [], [], start
    for round_ in range(config.rounds):
        modes, _ = anm_modes(structure.with_coords(coords + shift), config.modes, config.motion)
        basis = torch.tensor(math.sqrt(structure.n_atoms) * modes, dtype=torch.float32)  # (K, N, 3) Å per a_k
        base = torch.tensor(coords, dtype=torch.float32)
        a = torch.zeros(config.modes, requires_grad=True)
        optimizer = torch.optim.LBFGS([a], lr=1.0, max_iter=1, max_eval=MAX_LINE_SEARCH, history_size=20,
                                      line_search_fn="strong_wolfe")

        # Called only by this round's optimizer.step, so the round's variables are the ones meant (B023).
        def closure() -> torch.Tensor:
            optimizer.zero_grad()  # noqa: B023
            loss = 1 - correlation(base + torch.tensordot(a, basis, 1))  # noqa: B023
            loss.backward()
            return loss

        for step in range(config.steps):
            loss = optimizer.step(closure)
            rows.append({"round": round_ + 1, "step": step + 1, "correlation": 1 - loss.item()})
        with torch.no_grad():
            moved = base + torch.tensordot(a, basis, 1)
            end = float(correlation(moved))
        coords = moved.double().numpy()
        amplitudes.append(a.detach().double().numpy())
    return NmaFit(coords + shift, np.stack(amplitudes), pd.DataFrame(rows, columns=["round", "step", "correlation"]),
                  start, end)
