"""What notebook 06's model reads out of a noisy map of each training protein's state j, noise level by level.

    python benchmarks/domain_motion_probe.py [--run results/full/domain_motion/run] [--times 0.05 0.35 0.65 0.95]
                                             [--seed 0] [--csv OUT.csv]

For each training protein, state j (superposed onto state i, the reference) is rendered on the model's grid in
the reference's placement (its V_0), noised to V_t at each time t (eq. 1, seeded generator) and read out by the
encoder from the reference (X̂_0 = f_θ(V_t, SNR_t, X_ref)); the read-out's backbone RMSD to state j and to the
reference is printed (the benchmark's aligned RMSD). Training proteins only: nothing about the held-out proteins
is read here. docs/results.md's comparison of rotation augmentation on and off uses t = 0.05.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from cryosampler.experiments import domain_motion as dm
from cryosampler.evaluation.coverage import aligned_rmsd_matrix
from cryosampler.physics.render import render_density
from cryosampler.reference import prepare_reference
from cryosampler.readout import read_out_noised
from cryosampler.model.checkpoint import load_checkpoint, model_from_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("results/full/domain_motion/run"),
                        help="notebook 06's run folder (checkpoint.pt)")
    parser.add_argument("--times", type=float, nargs="+", default=[0.05, 0.35, 0.65, 0.95])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()

    model = model_from_checkpoint(load_checkpoint(args.run / "checkpoint.pt"))
    wheel = dm.benchmark_wheel()
    generator = torch.Generator().manual_seed(args.seed)
    rows = []
    for name, (state_i, state_j) in dm.TRAIN_CASES.items():
        reference, target = dm.read_state(wheel, name, state_i), dm.read_state(wheel, name, state_j)
        placed = prepare_reference(model, reference)
        truth = placed.place.apply(dm.superposed_state(target, reference))  # state j in the model's frame
        v0 = render_density(torch.tensor(truth)[None], torch.tensor(target.atomic_numbers),
                            model.config.grid)[0].float()
        for t in args.times:
            read = placed.place.inverse().apply(read_out_noised(model, placed.protein, v0, t, generator))
            to_j, to_reference = aligned_rmsd_matrix(read[None], reference, [target, reference])[0]
            rows.append({"protein": name, "t": t, "rmsd_to_state_j": to_j, "rmsd_to_reference": to_reference})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    print(table.pivot(index="t", columns="protein", values="rmsd_to_state_j").round(2).to_string())


if __name__ == "__main__":
    main()
