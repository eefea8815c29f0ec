"""Issue 19's diagnostic: is the collapse to the reference the sampler's fault, or the learned denoiser's, and at
which noise level does it happen? On notebook 06's training proteins only.

    python benchmarks/ideal_denoiser.py [--run results/full/domain_motion/run] [--samples 16] [--steps 25]
                                        [--seed 0] [--switch 0.95 0.9 0.8 0.7 0.6 0.5] [--tables tables]
                                        [--figures figures] [--replot]

For each training protein the two state maps (state i, the reference, and state j superposed onto it, rendered
on the model's grid in the reference's placement as benchmarks/domain_motion_probe.py renders them, divided by
the model's σ_data) are the finite training set of cryosampler.evaluation.ideal_denoiser. DDIM then runs from
the same noise (same seed) with:

  learned          the trained model (what `cryosampler sample` does);
  D* above t_c     the ideal denoiser D* at t > t_c, the learned one below (issue 19's (c));
  nearest map      the training map of largest posterior weight at each step ((b));
  D*               the ideal denoiser throughout ((a)).

Every final map is read out by the trained encoder (eq. 12) and scored as notebook 06 scores samples (the
benchmark's backbone RMSD to state i and to state j, occupancy of state i). Along the learned run, the state
coordinate (0 = state i, 1 = state j) of the learned denoiser's output and of D* at the same V_t is kept at every
step ((d)). Writes tables/denoiser_diagnostic.{csv,md}, tables/denoiser_diagnostic_trajectory.{csv,md} and
figures/fig_denoiser_diagnostic.{png,pdf}; nothing about the held-out proteins is read. --replot rewrites the
Markdown tables and the figure from the CSV files already there, without sampling.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryosampler.evaluation.figures import plot_denoiser_diagnostic, save_figure
from cryosampler.evaluation.ideal_denoiser import (Recorder, ideal_denoiser, nearest_map_denoiser, state_coordinate,
                                                   switched_denoiser)
from cryosampler.evaluation.tables import save_table
from cryosampler.experiments import domain_motion as dm
from cryosampler.model.checkpoint import load_checkpoint, model_from_checkpoint
from cryosampler.model.diffusion import ddim_sample, readout_time
from cryosampler.model.featurize import collate
from cryosampler.physics.render import render_density
from cryosampler.reference import prepare_reference

# Issue 19's aim for each state's closest sample (Å).
AIM = 1.5


def state_maps(model, placed, reference, target) -> torch.Tensor:
    """(2, D, D, D) normalised maps of state i (the reference) and state j, in the reference's placement."""
    states = [(reference, reference.coords), (target, dm.superposed_state(target, reference))]
    maps = [render_density(torch.tensor(placed.place.apply(coords))[None], torch.tensor(state.atomic_numbers),
                           model.config.grid)[0].float() for state, coords in states]
    return torch.stack(maps) / model.sigma_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("results/full/domain_motion/run"),
                        help="notebook 06's run folder (checkpoint.pt)")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps K (the command line's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--switch", type=float, nargs="+", default=[0.95, 0.9, 0.8, 0.7, 0.6, 0.5],
                        help="times t_c above which D* replaces the learned denoiser")
    parser.add_argument("--tables", type=Path, default=Path("tables"))
    parser.add_argument("--figures", type=Path, default=Path("figures"))
    parser.add_argument("--replot", action="store_true", help="only rewrite the Markdown and the figure from the CSVs")
    args = parser.parse_args()
    if args.replot:
        summary = pd.read_csv(args.tables / "denoiser_diagnostic.csv")
        trajectory = pd.read_csv(args.tables / "denoiser_diagnostic_trajectory.csv")
        save_outputs(summary, trajectory, args)
        return

    torch.set_grad_enabled(False)
    model = model_from_checkpoint(load_checkpoint(args.run / "checkpoint.pt"))
    config = dataclasses.replace(model.config.diffusion, n_steps=args.steps)
    wheel = dm.benchmark_wheel()
    summary, trajectory = [], []
    for name, (state_i, state_j) in dm.TRAIN_CASES.items():
        reference, target = dm.read_state(wheel, name, state_i), dm.read_state(wheel, name, state_j)
        placed = prepare_reference(model, reference)
        maps = state_maps(model, placed, reference, target)  # (2, D, D, D)
        batch = collate([placed.protein] * args.samples)

        # learned and measure are called only in this protein's sampling, so its batch and maps are the ones
        # meant (B023).
        def learned(v_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return model.denoise(v_t, t, batch)[1] / model.sigma_data  # noqa: B023 (eq. 9)

        ideal = ideal_denoiser(maps, config)
        variants = {"learned": (learned, np.nan),
                    **{f"D* above {t_c:g}": (switched_denoiser(learned, ideal, t_c), t_c) for t_c in args.switch},
                    "nearest map": (nearest_map_denoiser(maps, config), np.nan), "D*": (ideal, np.nan)}
        for variant, (denoiser, t_c) in variants.items():
            def measure(v_t, t, v0_hat):
                return {"coordinate_learned": float(state_coordinate(v0_hat, *maps).mean()),  # noqa: B023
                        "coordinate_ideal": float(state_coordinate(ideal(v_t, t), *maps).mean())}  # noqa: B023

            recorder = Recorder(denoiser, measure) if variant == "learned" else denoiser
            tic = time.perf_counter()
            v_final = ddim_sample(recorder, (args.samples,) + maps.shape[1:], torch.Generator().manual_seed(args.seed),
                                  config)
            coords = model.atoms(v_final, readout_time(args.samples), batch).double().numpy()  # eq. 12
            samples = np.stack([placed.place.inverse().apply(x) for x in coords])
            scores = dm.score_samples(samples, reference, [reference, target]).set_index("target")
            map_side = state_coordinate(v_final, *maps).numpy()
            summary.append({"protein": name, "variant": variant, "t_switch": t_c,
                            "best_rmsd_i": scores.loc[reference.name, "best_rmsd"],
                            "best_rmsd_j": scores.loc[target.name, "best_rmsd"],
                            "occupancy_i": scores.loc[reference.name, "occupancy"],
                            "map_occupancy_i": float(np.mean(map_side < 0.5)),
                            "seconds": time.perf_counter() - tic})
            print(summary[-1], flush=True)
            if variant == "learned":
                trajectory += [{"protein": name, **row} for row in recorder.rows]
    summary, trajectory = pd.DataFrame(summary), pd.DataFrame(trajectory)
    summary["reaches_both"] = (summary["best_rmsd_i"] <= AIM) & (summary["best_rmsd_j"] <= AIM)
    save_outputs(summary, trajectory, args)


def save_outputs(summary: pd.DataFrame, trajectory: pd.DataFrame, args: argparse.Namespace) -> None:
    """The two tables (CSV and Markdown) and the figure."""
    save_table(summary, args.tables, "denoiser_diagnostic",
               footnote=f"benchmarks/ideal_denoiser.py: notebook 06's training proteins, {args.samples} samples, "
                        f"{args.steps} DDIM steps, seed {args.seed}, notebook 06's model (full profile); best_rmsd_*: "
                        f"closest sample's backbone RMSD (Å) to state i (the reference) and j; occupancy_i: share of "
                        f"samples nearer i (atoms), map_occupancy_i: share of final maps nearer i; reaches_both: both "
                        f"≤ {AIM} Å.")
    save_table(trajectory, args.tables, "denoiser_diagnostic_trajectory", floatfmt=".3f",
               footnote="benchmarks/ideal_denoiser.py, the learned run: mean state coordinate (0 = state i, 1 = "
                        "state j) of the learned denoiser's output and of D* at the same V_t, per DDIM step.")
    save_figure(plot_denoiser_diagnostic(summary, trajectory, AIM), args.figures, "fig_denoiser_diagnostic")
    print(summary.pivot(index="variant", columns="protein", values="best_rmsd_j").loc[list(dict.fromkeys(
        summary["variant"]))].round(2).to_string())


if __name__ == "__main__":
    main()
