"""``cryosampler sample --checkpoint CKPT --reference my.pdb -n 16 -o ensemble.pdb``: an ensemble for a reference."""

from __future__ import annotations

import argparse
import math
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from cryosampler.commands import (Relaxation, add_chain_arg, add_device_arg, add_overwrite_arg, add_quiet_arg,
                                  add_relax_arg, add_renamed, check_relax, check_writable, claimed, int_at_least,
                                  nearest_training_protein, read_model_reference, refuse_existing, refuse_inputs,
                                  same_path)
from cryosampler.io.files import staged_directory

__all__ = ["add_args", "main", "check_outputs", "output_paths", "DEFAULT_DDIM_STEPS", "HELP", "DESCRIPTION",
           "FORMATS"]

# DDIM steps K when --steps is not given, instead of the model's own K (DiffusionConfig.n_steps, the paper's 100,
# which the notebooks keep so that Table 1 follows the paper): the fewest that lose nothing against 100 in
# notebook 03's step sweep (tables/ddim_steps.md), for 4× less sampling time. The answer depends on the model:
# docs/design.md, "DDIM steps, chosen by data", gives it for the default model and for the one with sequence
# features.
DEFAULT_DDIM_STEPS = 25

MAPS = "sample_*.mrc"

# --format → the suffix -o takes: a multi-model PDB (the default), mmCIF, or an XTC trajectory for MD tools.
FORMATS = {"pdb": ".pdb", "cif": ".cif", "xtc": ".xtc"}

HELP = "sample an ensemble for a reference structure"
DESCRIPTION = ("Sample conformations of a protein from its static reference structure. The reference is placed in "
               "the model's frame by superposing its CA atoms on the model's template (matched by residue number), "
               "or, for a model of several proteins, on its own principal axes; the nearest protein the model "
               "was trained on, by sequence identity, is reported. The ensemble is written back in the reference's "
               "own frame, with a per-sample validity table (<output>_validity.csv) and a ChimeraX script "
               "(<output>.cxc) beside it. Inputs are never overwritten; existing output files are refused unless "
               "--overwrite is given, and then replaced only when the run succeeds.")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, help="checkpoint.pt written by training")
    parser.add_argument("--reference", required=True, type=Path, help="reference structure (.pdb or .cif)")
    add_chain_arg(parser, "the chains the model was trained on")
    parser.add_argument("-n", "--num-samples", type=int_at_least(1), default=16,
                        help="number of samples (default 16)")
    parser.add_argument("-o", "--output", required=True, type=Path,
                        help="ensemble file: multi-model .pdb, .cif for mmCIF, or .xtc for an XTC trajectory (with "
                             "<output>_topology.pdb); <output>_validity.csv and <output>.cxc are written beside it")
    parser.add_argument("--format", choices=sorted(FORMATS), default=None,
                        help="ensemble format: pdb (multi-model PDB), cif (mmCIF) or xtc (GROMACS XTC trajectory for MD "
                             "tools, 0.01 Å precision, with a topology PDB); default from the --output suffix, which "
                             "must agree")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--steps", type=int_at_least(2), default=None,
                        help=f"DDIM steps K ≥ 2 (default {DEFAULT_DDIM_STEPS} for a map-family model, of which the "
                             "paper uses 100; a latent model's own, over its latents)")
    parser.add_argument("--batch-size", type=int_at_least(1), default=16,
                        help="samples denoised together; memory grows with it, not with -n (default 16)")
    parser.add_argument("--maps-dir", type=Path, default=None,
                        help=f"also write each sample's denoised map as MRC here, as {MAPS}, in the reference's frame "
                             "(aligned with the ensemble; map-family models, which sample maps)")
    add_overwrite_arg(parser, "the --output file and the files written beside it, and the --maps-dir maps")
    add_renamed(parser, "--allow-map-overwrite", old=("--force",), switch=True,
                help=f"replace all {MAPS} maps already in --maps-dir (default: refuse; --overwrite does too)")
    parser.add_argument("--allow-poor-fit", action="store_true",
                        help="sample a reference whose CA atoms fit the model's template poorly (another "
                             "protein or conformation, which would be mis-placed; default: refuse)")
    add_relax_arg(parser)
    add_device_arg(parser)
    add_quiet_arg(parser, "progress bar")


def output_paths(args: argparse.Namespace) -> dict[str, Path]:
    """The files a run writes beside --output: ``ensemble`` (--output itself), ``topology`` (XTC only: the reference's
    atoms, for the trajectory), ``validity`` (one row per sample), ``script`` (ChimeraX) and ``populations`` (a latent
    model's only: the samples' shares against the training maps' weights)."""
    out = args.output
    paths = {"ensemble": out, "validity": out.with_name(out.stem + "_validity.csv"),
             "script": out.with_suffix(".cxc"), "populations": out.with_name(out.stem + "_populations.csv")}
    if out.suffix.lower() == FORMATS["xtc"]:
        paths["topology"] = out.with_name(out.stem + "_topology.pdb")
    return paths


def check_outputs(args: argparse.Namespace, inputs: list[Path]) -> None:
    """Refuse outputs that would overwrite an input (``inputs``: the reference and the checkpoint), mix with old
    maps or cannot be written, before any work."""
    out = args.output
    suffixes = " or ".join(FORMATS.values())
    if out.suffix.lower() not in FORMATS.values():
        raise ValueError(f"--output must end in {suffixes}, got {out}")
    if args.format is not None and out.suffix.lower() != FORMATS[args.format]:
        raise ValueError(f"--output {out}: --format {args.format} writes a {FORMATS[args.format]} file; give --output "
                         f"{out.with_suffix(FORMATS[args.format]).name}")
    outputs = output_paths(args)
    for path in outputs.values():
        if path.is_dir():
            what = f"--output {out}" if path == out else f"{path} (written beside --output {out})"
            raise ValueError(f"{what} is a directory; give a file name ending in {suffixes}")
    named = {path: f"--output {out}" if path == out else f"{path} (written beside --output {out})"
             for path in outputs.values()}
    refuse_inputs(named, inputs)
    check_writable(out.parent, f"--output {out}")
    refuse_existing(named, args.overwrite)
    maps = args.maps_dir
    if maps is None:
        return
    if maps.exists() and not maps.is_dir():
        raise ValueError(f"--maps-dir {maps} is a file; give a directory for the maps")
    for path in outputs.values():
        if same_path(maps, path):
            what = "the --output file" if path == out else f"{path.name}, written beside --output"
            raise ValueError(f"--maps-dir {maps} is {what}; give a separate directory for the maps")
    check_writable(maps if maps.is_dir() else maps.parent, f"--maps-dir {maps}")
    old = list(maps.glob(MAPS)) if maps.is_dir() else []
    if old and not (args.allow_map_overwrite or args.overwrite):
        raise ValueError(f"--maps-dir {maps} already holds {len(old)} {MAPS} maps of an earlier run; pass "
                         "--allow-map-overwrite to replace them all, or choose another directory")


def main(args: argparse.Namespace) -> None:
    outputs = output_paths(args)
    covers = [*outputs.values(), *([] if args.maps_dir is None else [args.maps_dir])]
    with claimed(args.output, covers, lambda: check_outputs(args, [args.reference, args.checkpoint])):
        _sample(args)


def _sample(args: argparse.Namespace) -> None:
    """Sample into the claimed --output (:func:`main`)."""
    # Imported only now (torch and ProDy take seconds), so usage and output errors come at once.
    import numpy as np
    import pandas as pd

    from cryosampler.physics.frame import MAX_TEMPLATE_RMSD, map_to_input_frame
    from cryosampler.io.mrc import write_mrc
    from cryosampler.sampling import iter_reference_samples
    from cryosampler.latent_sampling import iter_reference_latent_samples, latent_populations
    from cryosampler.reference import prepare_reference
    from cryosampler.io.atomic_files import EnsembleWriter, write_pdb
    from cryosampler.io.chimerax import enclosing_level, ensemble_script, protein_volume
    from cryosampler.io.files import atomic_path
    from cryosampler.io.trajectory import XtcWriter
    from cryosampler.device import resolve_device
    from cryosampler.evaluation.metrics import STAYS_AT_REFERENCE, EnsembleSpread, spread_parts
    from cryosampler.evaluation.validate import sample_validity, validity_summary, validity_warning
    from cryosampler.model.checkpoint import family_of, load_checkpoint, model_from_checkpoint

    device = resolve_device(args.device)
    state = load_checkpoint(args.checkpoint)
    latent = family_of(state) == "latent"
    if latent and state["stage"] < 2:
        raise ValueError(f"{args.checkpoint} holds stage 1 of a latent model only (its training stopped before "
                         "stage 2); finish it with cryosampler train --family latent --resume")
    if latent and args.maps_dir is not None:
        raise ValueError(f"--maps-dir: {args.checkpoint} is a latent model, which samples structures, not maps; leave "
                         "--maps-dir out")
    model = model_from_checkpoint(state)
    reference = read_model_reference(args.reference, args.chain, state, quiet=args.quiet)
    relaxation = None
    if args.relax:
        check_relax(reference, args.reference)
        relaxation = Relaxation(reference)
    max_fit = math.inf if args.allow_poor_fit else MAX_TEMPLATE_RMSD
    placed = prepare_reference(model, reference, max_template_rmsd=max_fit, source=str(args.reference),
                               override="pass --allow-poor-fit to sample anyway")
    if placed.template_rmsd > MAX_TEMPLATE_RMSD:
        print(f"cryosampler: WARNING: {args.reference} fits the model's template at {placed.template_rmsd:.1f} Å CA "
              f"RMSD (limit {MAX_TEMPLATE_RMSD:g} Å): it is not a protein or conformation this model knows, and "
              "its samples are unlikely to mean anything (--allow-poor-fit)", file=sys.stderr)
    nearest = nearest_training_protein(state, reference.sequence, args.reference)  # `train` lists them
    # A latent model of several proteins samples the nearest one's latents (its prior's slot).
    slot = [p["name"] for p in state["proteins"]].index(nearest[0]) if latent and nearest is not None else 0

    tic = time.perf_counter()
    grid = model.config.grid
    args.output.parent.mkdir(parents=True, exist_ok=True)
    outputs = output_paths(args)
    parts = []  # per batch: RMSD to the reference (B,) and CA atoms (B, L, 3), for the summary
    tables, levels = [], []  # per batch: validity (B rows); per map: the level enclosing the protein's volume
    enclosed = protein_volume(reference)
    with ExitStack() as stack:
        # Every file is written under a temporary name and renamed at the end of the block, when all succeeded.
        if "topology" in outputs:
            ensemble = stack.enter_context(XtcWriter(args.output, reference.n_atoms))
        else:
            ensemble = stack.enter_context(EnsembleWriter(args.output, reference))
        written = {name: stack.enter_context(atomic_path(path)) for name, path in outputs.items()
                   if name != "ensemble" and (latent or name != "populations")}
        maps_dir, map_paths, first = None, [], 0
        if args.maps_dir is not None:
            args.maps_dir.parent.mkdir(parents=True, exist_ok=True)
            maps_dir = stack.enter_context(staged_directory(args.maps_dir, MAPS))
        latents = []  # a latent model's: (B, d) per batch

        def latent_samples():
            for coords, z in iter_reference_latent_samples(model, placed, args.num_samples, args.seed, slot,
                                                           args.batch_size, args.steps, device):
                latents.append(z)
                yield coords, None

        if latent:
            samples = latent_samples()
        else:
            samples = iter_reference_samples(model, placed, args.num_samples, args.seed, args.batch_size,
                                             n_steps=args.steps or DEFAULT_DDIM_STEPS, progress=not args.quiet,
                                             device=device)
        for coords, batch in samples:
            if relaxation is not None:
                coords = relaxation(coords)
            ensemble.write(coords)
            parts.append(spread_parts(coords, reference))
            tables.append(sample_validity(coords, reference, first=first))
            if maps_dir is not None:
                for k, volume in enumerate(batch.maps, start=first):
                    volume, origin = map_to_input_frame(volume, grid.size, grid.apix, placed.place)
                    write_mrc(maps_dir / f"sample_{k:03d}.mrc", volume, grid, origin=origin)
                    map_paths.append(args.maps_dir / f"sample_{k:03d}.mrc")
                    levels.append(enclosing_level(volume, enclosed, grid.apix))
            first += len(coords)
        table = pd.concat(tables, ignore_index=True)
        table.to_csv(written["validity"], index=False)
        if latent:
            per_map, per_group = latent_populations(model, np.concatenate(latents), slot)
            per_map.insert(1, "path", [state["maps"][i]["map"] for i in per_map["map"]])
            per_map.to_csv(written["populations"], index=False)
        if "topology" in written:
            write_pdb(written["topology"], reference)
        # One contour for the series: the median over the maps of the level that encloses the protein's volume.
        written["script"].write_text(ensemble_script(
            outputs["script"], args.reference, args.output, topology=outputs.get("topology"), maps=map_paths,
            map_level=float(np.median(levels)) if levels else None))
    maps = "" if args.maps_dir is None else f" and their maps to {args.maps_dir}"
    if "topology" in outputs:
        maps = f" (atoms in {outputs['topology']}){maps}"
    known = ([] if math.isnan(placed.template_rmsd)
             else [f"CA fit to the model's template {placed.template_rmsd:.2f} Å RMSD"])
    if nearest is not None:
        known.append(f"nearest training protein {nearest[0]}, {nearest[1]:.0%} sequence identity")
    print(f"wrote {args.num_samples} samples of {reference.name} ({'; '.join([f'{reference.n_atoms} atoms', *known])}"
          f") to {args.output}{maps} in {time.perf_counter() - tic:.1f} s", file=sys.stderr)
    if relaxation is not None:
        print(relaxation.summary("samples"), file=sys.stderr)
    spread = EnsembleSpread.from_parts(parts)
    print(f"ensemble: {spread.summary()}", file=sys.stderr)
    print(f"validity: {validity_summary(table, reference)}; per sample in {outputs['validity']}", file=sys.stderr)
    if latent:
        shares = "; ".join(f"group {g.group} ({g.maps} map{'s' * (g.maps > 1)}): {g.weight_share:.2f} asked, "
                           f"{g.sample_share:.2f} sampled" for g in per_group.itertuples())
        print(f"populations (each sample counted at its nearest training map, the maps in groups of similar "
              f"latents): {shares}; per map in {outputs['populations']}", file=sys.stderr)
    opened = "the reference, the ensemble and the maps" if args.maps_dir else "the reference and the ensemble"
    print(f"ChimeraX: chimerax {outputs['script']} opens {opened} together", file=sys.stderr)
    broken = validity_warning(table)
    if broken is not None:
        print(f"cryosampler: WARNING: {broken}; see {outputs['validity']}", file=sys.stderr)
    if spread.stays_at_reference:
        print(f"cryosampler: WARNING: the samples did not leave the reference: all {args.num_samples} lie within "
              f"{STAYS_AT_REFERENCE:g} Å of it (largest {spread.rmsd_to_reference.max():.2f} Å), so this is the "
              "reference, not an ensemble; read out single maps with cryosampler fit instead (docs/results.md)",
              file=sys.stderr)
