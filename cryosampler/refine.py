"""Real-space refinement of an atomic model against a map (``cryosampler fit --refine``): the coordinates are moved
to raise the map–model correlation of their rendering F(X) (``physics.render``, at the grid's resolution) while
restraints hold the reference's local geometry and a soft clash term keeps distant atoms apart.

    L(X) = w_map N (1 − r(V, F(X))) + s (w_R |P_R| L_residue(X) + w_B |P_B| L_backbone(X) + w_bond |B| L_bond(X))
           + w_clash Σ_(i,j) max(0, t_ij − d_ij)²

r is Pearson's correlation over the voxels of a box around the model (``io.grid.crop_around``), N the number of
atoms. L_residue and L_backbone are eq. 7 and 8 against the reference and L_bond the same squared distance
deviation over its covalent bonds B (``model.structural_losses``), each a mean over its pairs, so that every
weight acts per atom or per pair whatever the protein's size. The clash sum runs over atom pairs of residues two
or more apart (those ``evaluation.validate`` counts as clashes) closer than t_ij = min(clash_distance, their
distance in the reference): a contact the reference itself makes is never pushed apart; pairs come from a KD-tree,
rebuilt every few steps. L-BFGS minimises L from the given start in stages whose restraint scale s rises
(``RefineConfig.stages``); the stages before the last render at ``RefineConfig.coarse_resolution`` if the map's is
finer.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.spatial import cKDTree

from cryosampler.io.grid import MapGrid
from cryosampler.io.structure import Structure
from cryosampler.model.structural_losses import (backbone_window_pairs, bond_pairs, pair_distance_loss, residue_pairs,
                                                 structural_loss)
from cryosampler.physics.correlation import fit_target, pearson
from cryosampler.physics.render import render_density

__all__ = ["RefineConfig", "REFINE_PRESETS", "Refinement", "refine", "clash_pairs", "clash_penalty",
           "MIN_SEPARATION"]

# Residues this far apart or more in number may clash; nearer ones are bonded, 1-3 related or held by eq. 7–8
# (evaluation.validate counts clashes the same way).
MIN_SEPARATION = 2
# Evaluations of L per L-BFGS iteration, at most (its strong-Wolfe line search).
MAX_LINE_SEARCH = 20


@dataclass(frozen=True)
class RefineConfig:
    """Weights and steps of real-space refinement (module docstring's L)."""

    steps: int = 100  # L-BFGS iterations, all stages together
    map_weight: float = 1.0  # w_map, per atom, on 1 − r
    residue_weight: float = 3.0  # w_R (Å⁻²), per pair of eq. 7
    backbone_weight: float = 0.1  # w_B (Å⁻²), per pair of eq. 8 (per window holding it): hinges must bend
    bond_weight: float = 10.0  # w_bond (Å⁻²), per covalent bond (structural_losses.bond_pairs): bonds stay exact
    clash_weight: float = 10.0  # w_clash (Å⁻²), per pair: wins over a map that shows the clash
    clash_distance: float = 2.5  # Å; evaluation.validate counts clashes below 2.2 Å: keep a margin
    # Restraint scale of each stage, steps split evenly. Stiff restraints slow L-BFGS on the map's soft
    # directions, so the model first follows the map under weak restraints, then takes the full ones.
    stages: tuple[float, ...] = (0.03, 1.0)
    # Å. Stages before the last render no sharper than this: a blurred model feels a map from farther away.
    coarse_resolution: float = 8.0
    pair_every: int = 10  # steps between rebuilds of the clash pair list
    pair_reach: float = 2.0  # Å beyond clash_distance that a rebuilt list also holds, for the steps until the next
    margin: float = 10.0  # Å of map kept around the start model on every side (io.grid.crop_around)

    def __post_init__(self):
        if not (isinstance(self.steps, int) and self.steps >= 0):
            raise ValueError(f"RefineConfig.steps must be an int ≥ 0, got {self.steps!r}")
        for name in ("map_weight", "residue_weight", "backbone_weight", "bond_weight", "clash_weight",
                     "clash_distance", "pair_reach", "margin", "coarse_resolution"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"RefineConfig.{name} must be a finite number ≥ 0, got {value!r}")
        if not (self.stages and all(math.isfinite(s) and s >= 0 for s in self.stages)):
            raise ValueError(f"RefineConfig.stages must be one or more finite scales ≥ 0, got {self.stages!r}")
        if not (isinstance(self.pair_every, int) and self.pair_every >= 1):
            raise ValueError(f"RefineConfig.pair_every must be a positive int, got {self.pair_every!r}")


REFINE_PRESETS = {
    "default": RefineConfig(),
    "fast": RefineConfig(steps=40),  # most of the gain at 40 % of the time (docs/results.md, "Fitting methods")
    "smoke": RefineConfig(steps=3),  # tests: the same code, a few steps
}


@dataclass(frozen=True)
class Refinement:
    """A refined model and how it got there."""

    coords: np.ndarray  # (N, 3) float64, Å, the grid's frame
    log: pd.DataFrame  # row k: the terms of step k + 1's stage where it starts (the last row: the result, at the
    # grid's resolution): step (0 … steps), loss, correlation, residue, backbone and bond (unweighted, Å²),
    # clash (Å²), clash_pairs (pairs in the list)
    correlation_start: float  # r of the start model with the map (cropped box, grid's resolution)
    correlation_end: float  # the same for the refined model


def clash_pairs(coords: np.ndarray, res_nums: np.ndarray, reach: float) -> np.ndarray:
    """Atom pairs (P, 2), i < j, of coords (N, 3) Å closer than ``reach`` Å whose residue numbers (N,) differ by
    ``MIN_SEPARATION`` or more."""
    pairs = cKDTree(np.asarray(coords, np.float64)).query_pairs(reach, output_type="ndarray").reshape(-1, 2)
    nums = np.asarray(res_nums)[pairs]
    return pairs[np.abs(nums[:, 0] - nums[:, 1]) >= MIN_SEPARATION]


def clash_penalty(coords: torch.Tensor, pairs: torch.Tensor, limits: torch.Tensor) -> torch.Tensor:
    """Σ_p max(0, limits_p − d_p)², Å²: coords (N, 3) Å, pairs (P, 2) int64, limits (P,) Å."""
    delta = coords[pairs[:, 0]] - coords[pairs[:, 1]]  # (P, 3)
    distance = delta.square().sum(1).clamp(min=1e-12).sqrt()  # (P,), floored for a finite gradient
    return torch.relu(limits - distance).square().sum()


def refine(coords0: np.ndarray, reference: Structure, volume: np.ndarray, grid: MapGrid,
           config: RefineConfig = RefineConfig()) -> Refinement:
    """Refine a model of ``reference``'s protein into a map (module docstring).

    Parameters
    ----------
    coords0 : (N, 3) Å, the start model (a read-out, the reference placed in the map, …), in the grid's frame and
        ``reference``'s atom order.
    reference : the structure whose local distances eq. 7–8 and the clash limits keep (any frame).
    volume : (D, D, D) float, axes (x, y, z), on ``grid``; any units and offset (not constant).
    grid : the map's grid; the model is rendered at grid.resolution, so give the map's own resolution here.
    config : weights and steps.

    Deterministic: the same inputs give the same model. Atoms that leave the cropped box add only what reaches it.
    """
    coords0, target, box, shift, weights = fit_target(reference, coords0, volume, grid, config.margin)
    ref = torch.tensor(reference.coords, dtype=torch.float32)
    pairs_r, _ = residue_pairs(reference.residue_starts)
    pairs_b = backbone_window_pairs(reference.backbone_index, res_nums=reference.backbone_res_nums).reshape(-1, 2)
    bonds = torch.as_tensor(bond_pairs(reference.coords, reference.res_nums, reference.atom_names))

    x = torch.tensor(coords0 - shift, dtype=torch.float32, requires_grad=True)  # (N, 3) Å, the cube's frame
    state: dict = {}

    def rebuild() -> None:
        pairs = clash_pairs(x.detach().numpy(), reference.res_nums, config.clash_distance + config.pair_reach)
        state["pairs"] = torch.as_tensor(pairs, dtype=torch.int64)
        state["limits"] = torch.as_tensor(np.minimum(config.clash_distance, np.linalg.norm(
            reference.coords[pairs[:, 0]] - reference.coords[pairs[:, 1]], axis=1)), dtype=torch.float32)

    def terms(coords: torch.Tensor) -> dict[str, torch.Tensor]:
        scale = state["scale"]
        r = pearson(target, render_density(coords[None], weights, state["box"], check_bounds=False))[0]
        restraints = structural_loss(coords[None], ref, pairs_r, pairs_b,
                                     lambda_r=scale * config.residue_weight * len(pairs_r),
                                     lambda_b=scale * config.backbone_weight * len(pairs_b))
        bond = pair_distance_loss(coords[None], ref, bonds)
        clash = clash_penalty(coords, state["pairs"], state["limits"])
        loss = (config.map_weight * len(coords) * (1 - r) + restraints.total
                + scale * config.bond_weight * len(bonds) * bond + config.clash_weight * clash)
        return {"loss": loss, "correlation": r, "residue": restraints.residue, "backbone": restraints.backbone,
                "bond": bond, "clash": clash}

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        now = terms(x)
        now["loss"].backward()
        state.setdefault("first", {k: v.detach() for k, v in now.items()})  # L-BFGS starts where the step starts
        return now["loss"]

    def row(values: dict[str, torch.Tensor], step: int) -> dict:
        return {"step": step, **{k: float(v) for k, v in values.items()}, "clash_pairs": len(state["pairs"])}

    rows = []
    rebuild()
    state["scale"], state["box"] = config.stages[-1], box
    with torch.no_grad():
        start = float(terms(x)["correlation"])
    for step in range(config.steps):
        stage = step * len(config.stages) // config.steps
        if stage != state.get("stage"):  # a new objective: L-BFGS forgets the last one
            last = stage == len(config.stages) - 1
            state["stage"], state["scale"] = stage, config.stages[stage]
            state["box"] = box if last else dataclasses.replace(
                box, resolution=max(box.resolution, config.coarse_resolution))
            optimizer = torch.optim.LBFGS([x], lr=1.0, max_iter=1, max_eval=MAX_LINE_SEARCH, history_size=20,
                                          line_search_fn="strong_wolfe")
        if step and step % config.pair_every == 0:
            rebuild()
        state.pop("first", None)
        optimizer.step(closure)
        rows.append(row(state["first"], step))
    state["scale"], state["box"] = config.stages[-1], box
    with torch.no_grad():
        rows.append(row(terms(x), config.steps))
    return Refinement(x.detach().double().numpy() + shift, pd.DataFrame(rows), start, rows[-1]["correlation"])
