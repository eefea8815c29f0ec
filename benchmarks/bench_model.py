"""Benchmark the model on this machine: training s/step per encoder preset, and sampling time per protein.

    python benchmarks/bench_model.py [--presets paper default] [--steps 5] [--csv PATH]

Uses 4CLN (1,164 atoms) from $CRYOSAMPLER_PDB_DIR, placed in its own principal-axes frame, with
untrained weights (speed does not depend on the weights). Reports the median over ``--steps`` timed
training steps (batch 8, forward + backward + AdamW) after one warm-up step, and the wall time of
16 samples × 100 DDIM steps (one batch of 16) for the ``default`` preset.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch

from cryosampler.encoder import ENCODER_PRESETS
from cryosampler.featurize import featurize
from cryosampler.frame import placement, principal_axes_template
from cryosampler.manifest import find_entry, pdb_dir_from_env
from cryosampler.model import CryoSampler, ModelConfig
from cryosampler.render import MapGrid, render_density
from cryosampler.sampling import sample_ensemble
from cryosampler.structure import read_structure
from cryosampler.training import TrainConfig, TrainingExample, training_losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["paper", "default", "smoke"])
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per preset")
    parser.add_argument("--sample", action=argparse.BooleanOptionalAction, default=True,
                        help="also time 16 samples × 100 DDIM steps with the default preset")
    parser.add_argument("--csv", default=None, help="write the results here")
    args = parser.parse_args()

    path = find_entry("4CLN", pdb_dir_from_env())
    if path is None:
        raise SystemExit("4CLN not found: set CRYOSAMPLER_PDB_DIR to the calmodulin PDB directory")
    structure = read_structure(path)
    template = principal_axes_template(structure)
    coords = placement(structure, template).apply(structure.coords)
    grid = MapGrid()
    volume = render_density(torch.tensor(coords[None], dtype=torch.float32),
                            torch.tensor(structure.atomic_numbers, dtype=torch.float32), grid)[0]
    rows = []
    for preset in args.presets:
        encoder = ENCODER_PRESETS[preset]
        protein = featurize(structure, coords, tokens=encoder.tokens)
        examples = [TrainingExample(protein, volume)]
        model = CryoSampler(ModelConfig(encoder=encoder, grid=grid), float(volume.std()), template)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        config = TrainConfig(batch_size=8)
        generator = torch.Generator().manual_seed(0)
        times = []
        for step in range(args.steps + 1):
            tic = time.perf_counter()
            losses = training_losses(model, examples, torch.zeros(8, dtype=torch.long), config, generator)
            optimizer.zero_grad()
            losses["loss"].backward()
            optimizer.step()
            if step:  # the first step pays one-off kernel set-up
                times.append(time.perf_counter() - tic)
        n_params = sum(p.numel() for p in model.parameters())
        rows.append({"preset": preset, "parameters": n_params, "train_s_per_step_b8": statistics.median(times)})
        print(f"{preset:8s} {n_params:>11,d} parameters  {rows[-1]['train_s_per_step_b8']:.2f} s/step (batch 8)",
              flush=True)
        if args.sample and preset == "default":
            tic = time.perf_counter()
            sample_ensemble(model, protein, 16, torch.Generator().manual_seed(0), batch_size=16, n_steps=100)
            rows[-1]["sample_16x100_s"] = time.perf_counter() - tic
            print(f"{preset:8s} 16 samples × 100 DDIM steps: {rows[-1]['sample_16x100_s']:.1f} s", flush=True)
    if args.csv:
        pd.DataFrame(rows).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
