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
import functools
from pathlib import Path

from cryosampler.device import resolve_device
from cryosampler.experiments.ablation import ablation_configs, choose_proteins, run_ablation
from cryosampler.experiments.profiles import get_profile
from cryosampler.experiments.simulate import load_dataset
from cryosampler.model.denoiser import PRECISIONS


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
    encoder, config = ablation_configs(args.preset, args.steps, args.seed, args.precision,
                                       sequence_features=not args.no_sequence_features, lambda_r=args.lambda_r,
                                       lambda_b=args.lambda_b)
    result = run_ablation(args.out, profile.data_dir, dataset, template, proteins, encoder, config, device,
                          args.sampling_seeds, method=args.label or args.preset, preset=args.preset,
                          on_row=functools.partial(print, flush=True))
    print(result[result["use"] == "selection"].to_string(index=False))
    held_out = result[result["use"] != "selection"]
    if len(held_out):
        print("\nHeld-out proteins, for reporting only (NOT for model selection):")
        print(held_out.to_string(index=False))


if __name__ == "__main__":
    main()
