"""Short equal-budget training runs that compare encoder designs (docs/design.md's ablation).

    python benchmarks/ablation.py OUT_DIR --steps 1500 [--preset default] [--seed 0] [--lambda-r 0.01 --lambda-b 0.01]
                                  [--no-sequence-features] [--precision fp32|bf16] [--device auto]
                                  [--sampling-seeds 0 1 2] [--label NAME] [--proteins 1EXR 1OOJ] [--report-held-out]

Reads notebook 01's data (``results/<profile>/data``), trains on the training proteins with the given
settings (``train()``, as notebook 02; its ``train_log.csv`` lands in OUT_DIR), then samples 16
conformations × 100 DDIM steps per sampling seed (default: seed 0) of each training protein (or those given
with ``--proteins``) and prints the closest-sample RMSD per state, the state occupancy and the times.
Writes ``OUT_DIR/result.csv``, a row per protein and sampling seed, growing as it goes; its columns
``method`` (``--label``), ``slot``, ``split``, ``seed``, ``closest_A``, ``closest_B`` are what
``tables.table1`` reads, so ``--profile full --sampling-seeds 0 1 2 --report-held-out`` gives Table 1's
protocol for the trained model.

Choose models and settings on the training proteins only. ``--report-held-out`` also scores the validation
and test proteins (4CLN, 1PRW); their rows are marked "held out (report only)" and printed apart, for
reporting a chosen model, never for choosing one.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryosampler.device import resolve_device
from cryosampler.model.denoiser import PRECISIONS
from cryosampler.model.encoder import ENCODER_PRESETS
from cryosampler.model.featurize import featurize
from cryosampler.evaluation.metrics import score_ensemble
from cryosampler.model.denoiser import ModelConfig
from cryosampler.experiments.profiles import get_profile
from cryosampler.sampling import sample_ensemble
from cryosampler.experiments.simulate import load_dataset, load_states
from cryosampler.training import TrainConfig, train
from cryosampler.experiments.simulate import training_examples


def choose_proteins(dataset: pd.DataFrame, proteins: list[str] | None, report_held_out: bool) -> list[str]:
    """The slots to score: ``proteins`` (default: every training slot), plus every held-out slot with
    ``report_held_out``. ValueError for an unknown slot, or a held-out one without ``report_held_out``."""
    split = dict(zip(dataset["slot"], dataset["split"]))
    chosen = list(proteins) if proteins else [slot for slot in split if split[slot] == "train"]
    for slot in chosen:
        if slot not in split:
            raise ValueError(f"--proteins {slot}: not in the dataset; choose from {', '.join(split)}")
        if split[slot] != "train" and not report_held_out:
            raise ValueError(f"--proteins {slot}: a {split[slot]} protein; ablations select on training proteins "
                             "only. Add --report-held-out to score it for reporting (not for model selection)")
    if report_held_out:
        chosen += [slot for slot in split if split[slot] != "train" and slot not in chosen]
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--profile", default="fast", help="whose notebook-01 data to read (same in both)")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0, help="training seed (weights, batches, noise)")
    parser.add_argument("--lambda-r", type=float, default=None)
    parser.add_argument("--lambda-b", type=float, default=None)
    parser.add_argument("--no-sequence-features", action="store_true",
                        help="encoder without residue-type and atom-name embeddings (EncoderConfig.sequence_features)")
    parser.add_argument("--precision", default="fp32", choices=list(PRECISIONS), help="encoder arithmetic")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--sampling-seeds", nargs="+", type=int, default=[0], help="seeds of the scored ensembles")
    parser.add_argument("--label", default=None, help="the method column of result.csv (default: the preset)")
    parser.add_argument("--proteins", nargs="+", default=None,
                        help="training proteins to score (default: every training protein)")
    parser.add_argument("--report-held-out", action="store_true",
                        help="also score the validation and test proteins, for reporting only: NOT for model "
                             "selection")
    args = parser.parse_args()

    profile = get_profile(args.profile)
    dataset, template = load_dataset(profile.data_dir)
    try:
        proteins = choose_proteins(dataset, args.proteins, args.report_held_out)
    except ValueError as error:
        parser.error(str(error))
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    encoder = ENCODER_PRESETS[args.preset]
    if args.no_sequence_features:
        encoder = dataclasses.replace(encoder, sequence_features=False)
    config = TrainConfig(steps=args.steps, seed=args.seed, precision=args.precision)
    for name in ("lambda_r", "lambda_b"):
        if getattr(args, name) is not None:
            config = dataclasses.replace(config, **{name: getattr(args, name)})
    train_slots = list(dataset.loc[dataset["split"] == "train", "slot"])
    examples = training_examples(profile.data_dir, train_slots, tokens=encoder.tokens)
    tic = time.perf_counter()
    model = train(examples, ModelConfig(encoder=encoder), config, template, args.out, progress=False, device=device)
    seconds_per_step = (time.perf_counter() - tic) / args.steps
    settings = {"method": args.label or args.preset, "preset": args.preset,
                "sequence_features": encoder.sequence_features, "precision": args.precision, "steps": args.steps,
                "train_seed": args.seed, "lambda_r": config.lambda_r, "lambda_b": config.lambda_b,
                "train_seconds_per_step": seconds_per_step, "device": str(device)}
    rows = []
    for slot in proteins:
        reference, coords = load_states(profile.data_dir, slot)
        protein = featurize(reference, coords["ref"], tokens=encoder.tokens)
        split = dataset.set_index("slot").loc[slot, "split"]
        for seed in args.sampling_seeds:
            tic = time.perf_counter()
            ensemble = sample_ensemble(model, protein, 16, torch.Generator(device).manual_seed(seed), n_steps=100,
                                       device=device, precision=args.precision)
            score = score_ensemble(ensemble.coords, np.stack([coords["A"], coords["B"]]))
            rows.append({"slot": slot, "split": split, "seed": seed,
                         "use": "selection" if split == "train" else "held out (report only)", **score.summary(),
                         "sample_seconds": time.perf_counter() - tic, **settings})
            print(rows[-1], flush=True)
            # Rewritten after every ensemble: a run stopped part-way keeps what it scored.
            pd.DataFrame(rows).to_csv(args.out / "result.csv", index=False)
    result = pd.DataFrame(rows)
    print(result[result["use"] == "selection"].to_string(index=False))
    held_out = result[result["use"] != "selection"]
    if len(held_out):
        print("\nHeld-out proteins, for reporting only (NOT for model selection):")
        print(held_out.to_string(index=False))


if __name__ == "__main__":
    main()
