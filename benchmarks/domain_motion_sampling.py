"""Sampling a model of notebook 06's training proteins from each protein's state i, scored as notebook 06 scores it:
the quick check of a sampler or model variant on the training proteins only (issue 19).

    python benchmarks/domain_motion_sampling.py --run RUN [--samples 16] [--steps 25] [--seed 0] [--csv OUT.csv]

RUN is a folder with checkpoint.pt of a model trained on notebook 06's manifest (results/full/domain_motion/
proteins.csv), e.g. `cryosampler train --maps proteins.csv --components 2 …`. For each training protein the
reference (state i) is placed and sampled as `cryosampler sample` does, and each sample's backbone RMSD to state i
and to state j (the benchmark's aligned RMSD) gives the closest sample to each and the occupancy of state i;
the ensemble's spread (clusters at 2 Å) is printed too. Nothing about the held-out proteins is read.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cryosampler.evaluation.metrics import ensemble_spread
from cryosampler.experiments import domain_motion as dm
from cryosampler.model.checkpoint import load_checkpoint, model_from_checkpoint
from cryosampler.reference import prepare_reference
from cryosampler.sampling import iter_reference_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="folder with checkpoint.pt")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()

    model = model_from_checkpoint(load_checkpoint(args.run / "checkpoint.pt"))
    wheel = dm.benchmark_wheel()
    rows = []
    for name, (state_i, state_j) in dm.TRAIN_CASES.items():
        reference, target = dm.read_state(wheel, name, state_i), dm.read_state(wheel, name, state_j)
        placed = prepare_reference(model, reference)
        tic = time.perf_counter()
        samples = np.concatenate([coords for coords, _ in iter_reference_samples(
            model, placed, args.samples, args.seed, n_steps=args.steps)])
        seconds = time.perf_counter() - tic
        scores = dm.score_samples(samples, reference, [reference, target]).set_index("target")
        spread = ensemble_spread(samples, reference)
        rows.append({"protein": name, "components": model.config.encoder.components,
                     "best_rmsd_i": scores.loc[reference.name, "best_rmsd"],
                     "best_rmsd_j": scores.loc[target.name, "best_rmsd"],
                     "occupancy_i": scores.loc[reference.name, "occupancy"],
                     "clusters": " ".join(map(str, spread.cluster_sizes)), "seconds": seconds})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    print(table.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
