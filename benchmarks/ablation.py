"""Short equal-budget training runs that compare encoder designs (the README's ablation table).

    python benchmarks/ablation.py OUT_DIR --steps 1500 [--preset default] [--seed 0] [--lambda-r 0.01 --lambda-b 0.01]

Reads notebook 01's data (``results/<profile>/data``), trains on the training proteins with the given
settings, then samples 16 conformations × 100 DDIM steps (seed 0) of two training proteins and the
validation protein and prints the closest-sample RMSD per state, the state occupancy and the times.
Writes ``OUT_DIR/result.csv``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryosampler.encoder import ENCODER_PRESETS
from cryosampler.featurize import featurize
from cryosampler.metrics import score_ensemble
from cryosampler.model import ModelConfig
from cryosampler.profiles import get_profile
from cryosampler.sampling import sample_ensemble
from cryosampler.simulate import load_dataset, load_states
from cryosampler.training import TrainConfig, train, training_examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--profile", default="fast", help="whose notebook-01 data to read (same in both)")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0, help="training seed (weights, batches, noise)")
    parser.add_argument("--lambda-r", type=float, default=None)
    parser.add_argument("--lambda-b", type=float, default=None)
    parser.add_argument("--proteins", nargs="+", default=["1EXR", "1OOJ", "4CLN"])
    args = parser.parse_args()

    profile = get_profile(args.profile)
    dataset, template = load_dataset(profile.data_dir)
    encoder = ENCODER_PRESETS[args.preset]
    config = TrainConfig(steps=args.steps, seed=args.seed)
    for name in ("lambda_r", "lambda_b"):
        if getattr(args, name) is not None:
            config = dataclasses.replace(config, **{name: getattr(args, name)})
    train_slots = list(dataset.loc[dataset["split"] == "train", "slot"])
    examples = training_examples(profile.data_dir, train_slots, tokens=encoder.tokens)
    tic = time.perf_counter()
    model = train(examples, ModelConfig(encoder=encoder), config, template, args.out, progress=False)
    seconds_per_step = (time.perf_counter() - tic) / args.steps
    rows = []
    for slot in args.proteins:
        reference, coords = load_states(profile.data_dir, slot)
        protein = featurize(reference, coords["ref"], tokens=encoder.tokens)
        tic = time.perf_counter()
        ensemble = sample_ensemble(model, protein, 16, torch.Generator().manual_seed(0), n_steps=100)
        score = score_ensemble(ensemble.coords, np.stack([coords["A"], coords["B"]]))
        split = dataset.set_index("slot").loc[slot, "split"]
        rows.append({"slot": slot, "split": split, **score.summary(),
                     "sample_seconds": time.perf_counter() - tic})
        print(rows[-1], flush=True)
    result = pd.DataFrame(rows).assign(
        preset=args.preset, steps=args.steps, seed=args.seed, lambda_r=config.lambda_r,
        lambda_b=config.lambda_b, train_seconds_per_step=seconds_per_step)
    result.to_csv(args.out / "result.csv", index=False)
    print(result.to_string(index=False))


if __name__ == "__main__":
    main()
