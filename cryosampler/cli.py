"""Command line: ``cryosampler sample --checkpoint CKPT --reference my.pdb -n 16 -o ensemble.pdb``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cryosampler.mrc import write_mrc
from cryosampler.structure import read_structure, write_mmcif, write_pdb
from cryosampler.training import load_checkpoint, model_from_checkpoint

__all__ = ["main", "DEFAULT_DDIM_STEPS"]

# DDIM steps K when --steps is not given: chosen by notebook 03's step sweep (README, "Performance").
DEFAULT_DDIM_STEPS = 100


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryosampler",
        description="CryoSampler: generate atomic conformational ensembles with a model trained on cryo-EM maps.")
    sub = parser.add_subparsers(dest="command", required=True)
    sample = sub.add_parser(
        "sample", help="sample an ensemble for a reference structure",
        description="Sample conformations of a protein from its static reference structure. The reference is "
                    "placed in the model's frame by superposing its CA atoms on the model's template (matched "
                    "by residue number); the ensemble is written back in the reference's own frame.")
    sample.add_argument("--checkpoint", required=True, type=Path, help="checkpoint.pt written by training")
    sample.add_argument("--reference", required=True, type=Path, help="reference structure (.pdb or .cif)")
    sample.add_argument("--chain", default=None, help="chain to use (default: the first protein chain)")
    sample.add_argument("-n", "--num-samples", type=int, default=16, help="number of samples (default 16)")
    sample.add_argument("-o", "--output", required=True, type=Path,
                        help="ensemble file: multi-model .pdb, or .cif for mmCIF")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.add_argument("--steps", type=int, default=DEFAULT_DDIM_STEPS,
                        help=f"DDIM steps K (default {DEFAULT_DDIM_STEPS}; the paper uses 100)")
    sample.add_argument("--batch-size", type=int, default=16, help="samples denoised together (default 16)")
    sample.add_argument("--maps-dir", type=Path, default=None,
                        help="also write each sample's denoised map as MRC here (in the model's frame)")
    sample.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _sample(args: argparse.Namespace) -> None:
    if args.num_samples < 1:
        raise ValueError(f"--num-samples must be positive, got {args.num_samples}")
    if args.output.suffix.lower() not in (".pdb", ".cif"):
        raise ValueError(f"--output must end in .pdb or .cif, got {args.output}")
    from cryosampler.sampling import sample_structure  # torch import only once arguments are valid

    model = model_from_checkpoint(load_checkpoint(args.checkpoint))
    reference = read_structure(args.reference, chain=args.chain)
    tic = time.perf_counter()
    coords, ensemble = sample_structure(model, reference, args.num_samples, args.seed, args.batch_size,
                                        n_steps=args.steps, progress=not args.quiet)
    # Everything is computed before anything is written, so a failure leaves no partial output.
    args.output.parent.mkdir(parents=True, exist_ok=True)
    (write_mmcif if args.output.suffix.lower() == ".cif" else write_pdb)(args.output, reference, coords)
    if args.maps_dir is not None:
        args.maps_dir.mkdir(parents=True, exist_ok=True)
        grid = model.config.grid
        for k, volume in enumerate(ensemble.maps):
            write_mrc(args.maps_dir / f"sample_{k:03d}.mrc", volume, grid, origin=grid.origin)
    print(f"wrote {args.num_samples} samples of {reference.name} ({reference.n_atoms} atoms) to {args.output} "
          f"in {time.perf_counter() - tic:.1f} s", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "sample":
            _sample(args)
    except ValueError as error:
        print(f"cryosampler: error: {error}", file=sys.stderr)
        return 2
    return 0
