"""``cryosampler fit --checkpoint C --reference model.pdb --maps vol_007.mrc -o vol_007.pdb``: the atomic model
the trained encoder reads out of each map (eq. 12 applied to the given map), in the map's frame."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cryosampler.commands import (Relaxation, add_device_arg, add_far_conformation_arg, add_quiet_arg, add_relax_arg,
                                  add_renamed, check_relax, check_writable, nearest_training_protein, refuse_inputs)
from cryosampler.commands.listing import MAP_SUFFIXES, is_map, resolve_maps
from cryosampler.io.files import staged_directory

__all__ = ["add_args", "main", "check_numbers", "check_outputs", "writes_one_file", "model_name", "validity_path",
           "HELP", "DESCRIPTION", "TABLE", "VALIDITY"]

TABLE = "fit.csv"
VALIDITY = "validity.csv"
HELP = "read out the atomic model of each map with a trained model"
DESCRIPTION = (
    "The atomic model a trained CryoSampler assigns to each map: the map is ingested around the reference "
    "(as `cryosampler train` does), turned into the model's frame, scaled to the reference's rendered density, "
    "and given to the encoder at the noise level that matches the map's own (the read-out of eq. 12, without "
    "sampling). Models are "
    "written in the map's frame, with the map–model correlation of the reference and of the fitted model. "
    "One map: -o FILE.pdb|.cif, with FILE_validity.csv beside it. Several maps (or a folder or CSV): -o FOLDER, "
    f"which receives one PDB per map (named after the map), {TABLE} and {VALIDITY} (each model's validity); the "
    "folder must be new or empty. --refine refines each read-out into its map (real-space refinement through the "
    "renderer, under the reference's bond, residue and backbone-window distances and a clash term); --recycle N "
    "reads each map out N more times, the reference replaced by the last read-out; --normal-modes (with --refine) "
    "also refines the reference's normal-mode fit into each map and keeps the better-fitting model.")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, help="checkpoint.pt written by training")
    parser.add_argument("--reference", required=True, type=Path,
                        help="atomic model fitted into the maps (.pdb or .cif), in the maps' frame")
    parser.add_argument("--chain", default=None, help="chain to use (default: the first protein chain)")
    add_renamed(parser, "--maps", old=("--map",), required=True, nargs="+", type=Path,
                help="map files, a folder of them, or a CSV with a 'map' column, as for train")
    parser.add_argument("-o", "--output", required=True, type=Path,
                        help="one map: the model file (.pdb or .cif); several: a new or empty folder")
    add_relax_arg(parser)
    add_device_arg(parser)
    add_far_conformation_arg(parser)
    add_quiet_arg(parser)
    parser.add_argument("--refine", action="store_true",
                        help="refine each read-out into its map (refine.refine; adds correlation_readout, the "
                             "read-out's correlation before refinement, to the table)")
    parser.add_argument("--resolution", type=float, default=None,
                        help="the maps' resolution (Å), at which --refine renders the model (default: the model's "
                             "training resolution)")
    parser.add_argument("--normal-modes", action="store_true",
                        help="with --refine: also fit the reference along its 10 lowest normal modes, refine that "
                             "too, and keep whichever refined model fits the map better (adds a start column)")
    parser.add_argument("--recycle", type=int, default=0,
                        help="read each map out this many more times, with the reference replaced by the last "
                             "read-out (default 0)")


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse a --resolution or --recycle that cannot be used (ValueError naming the option)."""
    if args.resolution is not None and not (args.resolution > 0 and args.resolution < float("inf")):
        raise ValueError(f"--resolution {args.resolution} must be a positive number of Å")
    if args.resolution is not None and not args.refine:
        raise ValueError("--resolution is the resolution --refine renders at; pass --refine too, or leave it out")
    if args.normal_modes and not args.refine:
        raise ValueError("--normal-modes chooses between starts of refinement; pass --refine too")
    if args.recycle < 0:
        raise ValueError(f"--recycle {args.recycle} must be 0 or more read-outs")


def model_name(map_path: Path) -> str:
    """The model file written for a map: its name without the map suffix, + .pdb (vol_1.5A.mrc → vol_1.5A.pdb)."""
    name = map_path.name
    for suffix in sorted(MAP_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] + ".pdb"
    return name + ".pdb"


def writes_one_file(args: argparse.Namespace, maps: list[Path]) -> bool:
    """True if the output is one model file (one map and a .pdb/.cif name), False if a folder of them."""
    return len(maps) == 1 and args.output.suffix.lower() in (".pdb", ".cif")


def validity_path(output: Path) -> Path:
    """The validity table written beside a single model file: vol_007.pdb → vol_007_validity.csv."""
    return output.with_name(output.stem + "_validity.csv")


def check_outputs(args: argparse.Namespace, inputs: list[Path]) -> None:
    """Refuse outputs that would overwrite an input (``inputs``: the reference, the checkpoint, the maps; and any
    CSV listing among ``args.maps``), mix with other files or cannot be written."""
    out, maps = args.output, inputs[2:]
    listings = [p for p in args.maps if p.is_file() and not is_map(p)]
    refuse_inputs({out: f"--output {out}"}, inputs + listings)
    if writes_one_file(args, maps):
        if out.is_dir():
            raise ValueError(f"--output {out} is a folder; give a file name ending in .pdb or .cif")
        table = validity_path(out)
        if table.is_dir():
            raise ValueError(f"{table} (written beside --output {out}) is a folder; give another --output name")
        refuse_inputs({table: f"{table} (written beside --output {out})"}, inputs + listings)
        check_writable(out.parent, f"--output {out}")
        return
    if out.suffix.lower() in (".pdb", ".cif"):
        raise ValueError(f"--output {out}: {len(maps)} maps give one model each; give a folder for them")
    seen = {}
    for path in maps:
        other = seen.setdefault(model_name(path), path)
        if other != path:
            raise ValueError(f"--maps {path} and {other} would both be written as {model_name(path)}; give maps "
                             "with different names")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--output {out} {'is a file' if not out.is_dir() else 'is not empty'}; give a new or "
                         "empty folder for the models")
    check_writable(out if out.is_dir() else out.parent, f"--output {out}")


def main(args: argparse.Namespace) -> None:
    check_numbers(args)
    maps = resolve_maps(args.maps, args.reference)
    check_outputs(args, [args.reference, args.checkpoint, *maps])
    single = writes_one_file(args, maps)
    # Imported only now (torch and ProDy take seconds), so usage and output errors come at once.
    import numpy as np
    import pandas as pd

    from cryosampler.device import resolve_device
    from cryosampler.ingest import ingest_map
    from cryosampler.reference import prepare_reference
    from cryosampler.readout import fit_map
    from cryosampler.physics.nma_fit import NMA_FIT_PRESETS
    from cryosampler.refine import REFINE_PRESETS
    from cryosampler.evaluation.validate import sample_validity, validity_summary
    from cryosampler.io.atomic_files import read_structure, write_mmcif, write_pdb
    from cryosampler.io.files import atomic_path
    from cryosampler.physics.superpose import rmsd
    from cryosampler.model.checkpoint import load_checkpoint, model_from_checkpoint

    device = resolve_device(args.device)
    state = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(state)
    reference = read_structure(args.reference, chain=args.chain)
    if args.relax:
        check_relax(reference, args.reference)
    nearest_training_protein(state, reference.sequence, args.reference)
    placed = prepare_reference(model, reference, source=str(args.reference))
    centre = placed.place.inverse().apply(np.zeros(3))  # map frame: the model box's centre

    tic, rows, models = time.perf_counter(), [], []
    for k, path in enumerate(maps, start=1):
        volume, _ = ingest_map(path, model.config.grid, reference.coords, reference.atomic_numbers, centre,
                               probes=not args.allow_far_conformation, res_nums=reference.res_nums)
        result = fit_map(model, reference, placed, volume, device, recycle=args.recycle,
                         refinement=REFINE_PRESETS["default"] if args.refine else None, resolution=args.resolution,
                         normal_modes=NMA_FIT_PRESETS["default"] if args.normal_modes else None)
        models.append(result.coords)
        rows.append({"map": str(path), "model": None, "correlation_reference": result.correlation_reference,
                     **({"correlation_readout": result.correlation_readout} if args.refine else {}),
                     "correlation_fitted": result.correlation_fitted,
                     "rmsd_to_reference": rmsd(result.coords, reference.coords),
                     **({"start": result.start} if args.normal_modes else {})})
        if not args.quiet:
            refined = (f" → {result.correlation_fitted:.3f} (refined from the {result.start})" if args.refine
                       else " (fitted)")
            print(f"map {k}/{len(maps)} {path}: map–model correlation {result.correlation_reference:.3f} (reference) "
                  f"→ {result.correlation_readout:.3f}{' (read out)' if args.refine else ''}{refined}, "
                  f"{rows[-1]['rmsd_to_reference']:.2f} Å from the reference", file=sys.stderr, flush=True)

    relaxation = Relaxation(reference) if args.relax else None
    if relaxation is not None:
        models = list(relaxation(np.stack(models)))
        for row, coords in zip(rows, models):
            row["rmsd_to_reference"] = rmsd(coords, reference.coords)
    validity = sample_validity(np.stack(models), reference).drop(columns="sample")
    if single:  # every writer writes a temporary file and renames it at the end
        args.output.parent.mkdir(parents=True, exist_ok=True)
        table = validity_path(args.output)
        validity.insert(0, "model", str(args.output))
        validity.insert(0, "map", str(maps[0]))
        with atomic_path(table) as tmp:
            validity.to_csv(tmp, index=False)
            (write_mmcif if args.output.suffix.lower() == ".cif" else write_pdb)(args.output, reference, models[0])
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        table = args.output / VALIDITY
        with staged_directory(args.output, "*") as folder:
            for row, coords in zip(rows, models):
                name = model_name(Path(row["map"]))
                row["model"] = str(args.output / name)
                write_pdb(folder / name, reference, coords)
            pd.DataFrame(rows).to_csv(folder / TABLE, index=False)
            validity.insert(0, "model", [row["model"] for row in rows])
            validity.insert(0, "map", [row["map"] for row in rows])
            validity.to_csv(folder / VALIDITY, index=False)
    where = f"{args.output} and {table}" if single else f"{args.output} (one model per map, {TABLE} and {VALIDITY})"
    print(f"fitted {len(maps)} map(s) in {time.perf_counter() - tic:.1f} s; wrote {where}", file=sys.stderr)
    if relaxation is not None:
        print(relaxation.summary(), file=sys.stderr)
    print(f"validity: {validity_summary(validity, reference, noun='models')}", file=sys.stderr)
