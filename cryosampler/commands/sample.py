"""``cryosampler sample --checkpoint CKPT --reference my.pdb -n 16 -o ensemble.pdb``: an ensemble for a reference."""

from __future__ import annotations

import argparse
import math
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from cryosampler.commands import check_writable, int_at_least, nearest_training_protein, refuse_inputs, same_path
from cryosampler.io.files import staged_directory

__all__ = ["add_args", "main", "check_outputs", "DEFAULT_DDIM_STEPS", "HELP", "DESCRIPTION"]

# DDIM steps K when --steps is not given, instead of the model's own K (DiffusionConfig.n_steps, the paper's 100,
# which the notebooks keep so that Table 1 follows the paper): the fewest that lose nothing against 100 in
# notebook 03's step sweep (tables/ddim_steps.md), for 4× less sampling time. The answer depends on the model:
# docs/design.md, "DDIM steps, chosen by data", gives it for the default model and for the one with sequence
# features.
DEFAULT_DDIM_STEPS = 25

MAPS = "sample_*.mrc"

HELP = "sample an ensemble for a reference structure"
DESCRIPTION = ("Sample conformations of a protein from its static reference structure. The reference is placed in "
               "the model's frame by superposing its CA atoms on the model's template (matched by residue number), "
               "or, for a model of several proteins, on its own principal axes; the nearest protein the model "
               "was trained on, by sequence identity, is reported. The ensemble is written back in the reference's "
               "own frame. Inputs are never overwritten; an existing --output file is replaced only when the run "
               "succeeds.")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, help="checkpoint.pt written by training")
    parser.add_argument("--reference", required=True, type=Path, help="reference structure (.pdb or .cif)")
    parser.add_argument("--chain", default=None, help="chain to use (default: the first protein chain)")
    parser.add_argument("-n", "--num-samples", type=int_at_least(1), default=16,
                        help="number of samples (default 16)")
    parser.add_argument("-o", "--output", required=True, type=Path,
                        help="ensemble file: multi-model .pdb, or .cif for mmCIF")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--steps", type=int_at_least(2), default=DEFAULT_DDIM_STEPS,
                        help=f"DDIM steps K ≥ 2 (default {DEFAULT_DDIM_STEPS}; the paper uses 100)")
    parser.add_argument("--batch-size", type=int_at_least(1), default=16,
                        help="samples denoised together; memory grows with it, not with -n (default 16)")
    parser.add_argument("--maps-dir", type=Path, default=None,
                        help=f"also write each sample's denoised map as MRC here, as {MAPS}, in the reference's frame "
                             "(aligned with the ensemble)")
    parser.add_argument("--force", action="store_true",
                        help=f"replace all {MAPS} maps already in --maps-dir (default: refuse)")
    parser.add_argument("--allow-poor-fit", action="store_true",
                        help="sample a reference whose CA atoms fit the model's template poorly (another "
                             "protein or conformation, which would be mis-placed; default: refuse)")
    parser.add_argument("--device", default="auto",
                        help="where to compute: auto (a GPU when CUDA is available, else the CPU), cpu, cuda or "
                             "cuda:N (default auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def check_outputs(args: argparse.Namespace, inputs: list[Path]) -> None:
    """Refuse outputs that would overwrite an input (``inputs``: the reference and the checkpoint), mix with old
    maps or cannot be written, before any work."""
    out = args.output
    if out.suffix.lower() not in (".pdb", ".cif"):
        raise ValueError(f"--output must end in .pdb or .cif, got {out}")
    if out.is_dir():
        raise ValueError(f"--output {out} is a directory; give a file name ending in .pdb or .cif")
    refuse_inputs({out: f"--output {out}"}, inputs)
    check_writable(out.parent, f"--output {out}")
    maps = args.maps_dir
    if maps is None:
        return
    if maps.exists() and not maps.is_dir():
        raise ValueError(f"--maps-dir {maps} is a file; give a directory for the maps")
    if same_path(maps, out):
        raise ValueError(f"--maps-dir {maps} is the --output file; give a separate directory for the maps")
    check_writable(maps if maps.is_dir() else maps.parent, f"--maps-dir {maps}")
    old = list(maps.glob(MAPS)) if maps.is_dir() else []
    if old and not args.force:
        raise ValueError(f"--maps-dir {maps} already holds {len(old)} {MAPS} maps of an earlier run; pass "
                         "--force to replace them all, or choose another directory")


def main(args: argparse.Namespace) -> None:
    check_outputs(args, [args.reference, args.checkpoint])
    # Imported only now (torch and ProDy take seconds), so usage and output errors come at once.
    from cryosampler.physics.frame import MAX_TEMPLATE_RMSD, map_to_input_frame
    from cryosampler.io.mrc import write_mrc
    from cryosampler.sampling import iter_reference_samples
    from cryosampler.reference import prepare_reference
    from cryosampler.io.atomic_files import EnsembleWriter, read_structure
    from cryosampler.device import resolve_device
    from cryosampler.evaluation.metrics import STAYS_AT_REFERENCE, EnsembleSpread, spread_parts
    from cryosampler.model.checkpoint import load_checkpoint, model_from_checkpoint

    device = resolve_device(args.device)
    state = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(state)
    reference = read_structure(args.reference, chain=args.chain)
    max_fit = math.inf if args.allow_poor_fit else MAX_TEMPLATE_RMSD
    placed = prepare_reference(model, reference, max_template_rmsd=max_fit, source=str(args.reference))
    if placed.template_rmsd > MAX_TEMPLATE_RMSD:
        print(f"cryosampler: WARNING: {args.reference} fits the model's template at {placed.template_rmsd:.1f} Å CA "
              f"RMSD (limit {MAX_TEMPLATE_RMSD:g} Å): it is not a protein or conformation this model knows, and "
              "its samples are unlikely to mean anything (--allow-poor-fit)", file=sys.stderr)
    nearest = nearest_training_protein(state, reference.sequence, args.reference)  # `train` lists them

    tic = time.perf_counter()
    grid = model.config.grid
    args.output.parent.mkdir(parents=True, exist_ok=True)
    parts = []  # per batch: RMSD to the reference (B,) and CA atoms (B, L, 3), for the summary
    with ExitStack() as stack:
        ensemble = stack.enter_context(EnsembleWriter(args.output, reference))
        maps_dir = None
        if args.maps_dir is not None:
            args.maps_dir.parent.mkdir(parents=True, exist_ok=True)
            maps_dir = stack.enter_context(staged_directory(args.maps_dir, MAPS))
        for coords, batch in iter_reference_samples(model, placed, args.num_samples, args.seed, args.batch_size,
                                                    n_steps=args.steps, progress=not args.quiet, device=device):
            first = ensemble.n_models
            ensemble.write(coords)
            parts.append(spread_parts(coords, reference))
            if maps_dir is not None:
                for k, volume in enumerate(batch.maps, start=first):
                    volume, origin = map_to_input_frame(volume, grid.size, grid.apix, placed.place)
                    write_mrc(maps_dir / f"sample_{k:03d}.mrc", volume, grid, origin=origin)
    maps = "" if args.maps_dir is None else f" and their maps to {args.maps_dir}"
    known = ([] if math.isnan(placed.template_rmsd)
             else [f"CA fit to the model's template {placed.template_rmsd:.2f} Å RMSD"])
    if nearest is not None:
        known.append(f"nearest training protein {nearest[0]}, {nearest[1]:.0%} sequence identity")
    print(f"wrote {args.num_samples} samples of {reference.name} ({'; '.join([f'{reference.n_atoms} atoms', *known])}"
          f") to {args.output}{maps} in {time.perf_counter() - tic:.1f} s", file=sys.stderr)
    spread = EnsembleSpread.from_parts(parts)
    print(f"ensemble: {spread.summary()}", file=sys.stderr)
    if spread.stays_at_reference:
        print(f"cryosampler: WARNING: the samples did not leave the reference: all {args.num_samples} lie within "
              f"{STAYS_AT_REFERENCE:g} Å of it (largest {spread.rmsd_to_reference.max():.2f} Å), so this is the "
              "reference, not an ensemble; read out single maps with cryosampler fit instead (docs/results.md)",
              file=sys.stderr)
