"""What ingestion's placement check (``ingest.check_placed``: a rigid-body fit of the reference into the map,
refused beyond ``MAX_FIT_DISPLACEMENT`` Å RMS) makes of maps of another conformation and of misplaced references,
and what it costs per map.

    python benchmarks/fit_check.py [--seed 0] [--csv OUT.csv]

Cases, each map rendered at 8 Å on a user-like grid and ingested onto the model's 64³ × 2 Å grid around the
reference (``ingest.resample_to_grid``), clean and at SNR 0.1 per voxel (``degrade.add_noise_at_snr``):

* calmodulin (1CLL, 4CLN, 1EXR, 3CLN, 1PRW from $CRYOSAMPLER_PDB_DIR): the ANM states 4 Å from the reference
  along modes 1 and 2 (``nma.simulate_motion``; mode 1 gives notebook 01's states), and the reference itself
  shifted 3 and 5 Å or turned 10° and 15° about three random axes through its centroid (misplaced);
* notebook 06's maps: each domain-motion pair (``domain_motion``), state j superposed on the reference state i
  on all aligned backbone atoms as the notebook renders it, in both directions;
* notebook 07's maps: frames of the adenylate kinase path (``transition.read_adk_path``, aligned on the CORE
  domain) against the closed reference 1AKE, also blurred to 6 Å with B 100 Å² at SNR 0.3.

Prints one row per map (shift Å, turn °, RMS displacement Å, refused, seconds of the rigid-body fit) and a
summary per kind of case.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from cryosampler.experiments import domain_motion as dm
from cryosampler.experiments.manifest import pdb_dir_from_env
from cryosampler.experiments.transition import adk_files, read_adk_path
from cryosampler.experiments.user_maps import gridding_around, render_gridded
from cryosampler.ingest import MAX_FIT_DISPLACEMENT, map_model_correlation, resample_to_grid
from cryosampler.io.atomic_files import read_structure
from cryosampler.io.grid import MapGrid
from cryosampler.physics.degrade import DegradeConfig, degrade
from cryosampler.physics.nma import MotionConfig, simulate_motion
from cryosampler.physics.rigid_fit import rigid_fit
from cryosampler.physics.superpose import rmsd

GRID = MapGrid()
CALMODULINS = ("1cll", "4cln", "1exr", "3cln", "1prw")
ADK_FRAMES = (0, 20, 40, 60, 80, 97)
NOISE = {"clean": DegradeConfig(), "SNR 0.1": DegradeConfig(snr=0.1)}


def checked(rows: list[dict], kind: str, case: str, map_coords: np.ndarray, map_numbers: np.ndarray,
            reference: np.ndarray, numbers: np.ndarray, recipes: dict[str, DegradeConfig], rng: np.random.Generator,
            apix: float = 1.5) -> None:
    """Render ``map_coords`` (M, 3) Å, Z ``map_numbers``, at 8 Å on an ``apix`` grid, degrade it by each recipe,
    ingest it around ``reference`` (N, 3) Å, Z ``numbers``, and fit the reference into it; one row each."""
    gridding = gridding_around(reference, apix, (112, 112, 112))
    clean = render_gridded(map_coords, map_numbers, gridding, GRID.resolution)
    centre = reference.mean(0)
    for noise, recipe in recipes.items():
        volume = resample_to_grid(degrade(clean, apix, recipe, rng), apix, np.array(gridding.corner) * apix, GRID,
                                  centre)
        tic = time.perf_counter()
        fit = rigid_fit(volume, reference - centre, numbers, GRID)
        seconds = time.perf_counter() - tic
        rows.append({"kind": kind, "case": case, "map": noise, "atoms": len(reference),
                     "correlation": map_model_correlation(volume, reference, numbers, GRID, centre),
                     "shift": fit.shift, "turn": fit.turn, "displacement": fit.displacement,
                     "refused": fit.displacement > MAX_FIT_DISPLACEMENT, "seconds": seconds})
        print(rows[-1], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="noise and axes seed")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rows: list[dict] = []

    pdb_dir = pdb_dir_from_env()
    if pdb_dir is None:
        raise SystemExit("set CRYOSAMPLER_PDB_DIR to the calmodulin PDB directory")
    for name in CALMODULINS:
        structure = read_structure(pdb_dir / f"{name}.pdb")
        coords, numbers = structure.coords, structure.atomic_numbers
        for mode in (0, 1):
            motion = simulate_motion(structure, MotionConfig(mode_index=mode))
            for label, state in (("A", motion.state_a), ("B", motion.state_b)):
                checked(rows, "calmodulin, 4 Å ANM state", f"{name} mode {mode + 1} {label}", state, numbers, coords,
                        numbers, NOISE, rng)
        centroid = coords.mean(0)
        for shift in (3.0, 5.0):
            direction = rng.normal(size=3)
            moved = coords + shift * direction / np.linalg.norm(direction)
            checked(rows, f"calmodulin, shifted {shift:g} Å", name, coords, numbers, moved, numbers, NOISE, rng)
        for angle in (10.0, 15.0):
            for axis in rng.normal(size=(3, 3)):
                turn = Rotation.from_rotvec(np.deg2rad(angle) * axis / np.linalg.norm(axis))
                checked(rows, f"calmodulin, turned {angle:g}°", name, coords, numbers,
                        turn.apply(coords - centroid) + centroid, numbers, NOISE, rng)

    wheel = dm.benchmark_wheel()
    cases = dm.read_cases(wheel)
    for name in (*dm.TRAIN_CASES, *dm.HELD_OUT_CASES):
        case = cases[name]
        states = {s: dm.read_state(wheel, name, s) for s in (case.state_i, case.state_j)}
        for ref, other in ((case.state_i, case.state_j), (case.state_j, case.state_i)):
            reference = states[ref]
            kind = "notebook 06 (train)" if name in dm.TRAIN_CASES else "notebook 06 (held out)"
            checked(rows, kind, f"{name} {ref} in {other}'s map", dm.superposed_state(states[other], reference),
                    states[other].atomic_numbers, reference.coords, reference.atomic_numbers,
                    {"clean": DegradeConfig()}, rng, apix=2.0)

    path = read_adk_path(adk_files())
    numbers = path.topology.atomic_numbers
    blurred = {"clean": DegradeConfig(), "6 Å, B 100, SNR 0.3": DegradeConfig(100.0, 6.0, 0.3)}
    for frame in ADK_FRAMES:
        checked(rows, "notebook 07 (ADK path)", f"frame {frame}, {rmsd(path.frames[frame], path.closed):.1f} Å",
                path.frames[frame], numbers, path.closed, numbers, blurred, rng)
    two = np.concatenate([path.closed, path.closed + [60.0, 0.0, 0.0]])  # a 3,312-atom reference, for the cost
    checked(rows, "cost, two ADK side by side", "fitted", two, np.tile(numbers, 2), two, np.tile(numbers, 2), NOISE,
            rng)

    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    summary = table.groupby(["kind", "map"], sort=False).agg(
        maps=("case", "size"), refused=("refused", "sum"), shift_max=("shift", "max"), turn_max=("turn", "max"),
        displacement_min=("displacement", "min"), displacement_max=("displacement", "max"),
        seconds_mean=("seconds", "mean"), seconds_max=("seconds", "max"))
    print(summary.round(2).to_string())
    print(f"rigid-body fit: {table['seconds'].mean():.3f} s per map on average, at most {table['seconds'].max():.3f} s")


if __name__ == "__main__":
    main()
