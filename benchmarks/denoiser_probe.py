"""What a model trained on notebook 07's maps reads out of a noisy map, noise level by noise level.

    python benchmarks/denoiser_probe.py [--run results/full/own_maps/runs/clean] [--frames 0 48 97]
                                        [--times 0.05 0.2 0.35 0.5 0.65 0.8 0.95] [--seed 0] [--csv OUT.csv]

For each path frame, the frame is rendered on the model's grid (its V_0), noised to V_t at each time t (eq. 1,
noise from a seeded generator) and read out by the encoder (X̂_0 = f_θ(V_t, SNR_t, X_ref)); the read-out's
heavy-atom RMSD to the frame and to the reference is printed. Sampling (DDIM from pure noise) returns the
reference-like state while this read-out finds the frame down to low SNR: the probe shows at which noise
level the model stops seeing the frame, the level where sampling makes its choice.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from cryosampler.model.diffusion import log_snr
from cryosampler.physics.render import render_density
from cryosampler.reference import prepare_reference
from cryosampler.readout import read_out_noised
from cryosampler.io.atomic_files import read_structure
from cryosampler.physics.superpose import rmsd
from cryosampler.model.checkpoint import load_checkpoint, model_from_checkpoint
from cryosampler.experiments.transition import adk_files, read_adk_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("results/full/own_maps/runs/clean"),
                        help="a run folder of notebook 07 (checkpoint.pt; the reference is two levels up)")
    parser.add_argument("--frames", type=int, nargs="+", default=[0, 48, 97])
    parser.add_argument("--times", type=float, nargs="+", default=[0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()

    model = model_from_checkpoint(load_checkpoint(args.run / "checkpoint.pt"))
    reference = read_structure(args.run.parents[1] / "adk_closed_1AKE.pdb")
    path = read_adk_path(adk_files())
    shift = (reference.coords - path.closed).mean(0)  # notebook 07's map frame: the path moved rigidly
    placed = prepare_reference(model, reference)
    generator = torch.Generator().manual_seed(args.seed)
    weights = torch.tensor(reference.atomic_numbers)
    rows = []
    for frame in args.frames:
        truth = path.frames[frame] + shift
        v0 = render_density(torch.tensor(placed.place.apply(truth))[None], weights, model.config.grid)[0].float()
        for t in args.times:
            read = placed.place.inverse().apply(read_out_noised(model, placed.protein, v0, t, generator))
            snr = float(log_snr(torch.tensor([t]), model.config.diffusion)[0])
            rows.append({"frame": frame, "t": t, "log_snr": snr,
                         "rmsd_to_frame": rmsd(read, truth), "rmsd_to_reference": rmsd(read, reference.coords),
                         "reference_to_frame": rmsd(reference.coords, truth)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    print(table.pivot(index="t", columns="frame", values="rmsd_to_frame").round(2).to_string())


if __name__ == "__main__":
    main()
