"""``cryosampler fit --checkpoint C --reference model.pdb --maps vol_007.mrc -o vol_007.pdb``: the atomic model
the trained encoder reads out of each map (eq. 12 applied to the given map), in the map's frame."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cryosampler.commands import (Relaxation, add_chain_arg, add_device_arg, add_far_conformation_arg,
                                  add_overwrite_arg, add_quiet_arg, add_relax_arg, add_renamed, check_relax,
                                  check_writable, claimed, nearest_training_protein, read_model_reference,
                                  refuse_existing, refuse_inputs)
from cryosampler.commands.listing import MAP_SUFFIXES, is_map, resolve_maps

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
    f"which receives one PDB per map (named after the map) as it is fitted, and {TABLE} and {VALIDITY} (each "
    "model's validity) rewritten after each; the folder must be new or empty, unless --resume finishes an "
    "interrupted fit there (maps already fitted are skipped) or --overwrite replaces an earlier fit. --refine "
    "refines each read-out into its map (real-space refinement through the renderer, under the reference's bond, "
    "residue and backbone-window distances and a clash term); --recycle N reads each map out N more times, the "
    "reference replaced by the last read-out; --normal-modes (with --refine) also refines the reference's "
    "normal-mode fit into each map and keeps the better-fitting model.")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, help="checkpoint.pt written by training")
    parser.add_argument("--reference", required=True, type=Path,
                        help="atomic model fitted into the maps (.pdb or .cif), in the maps' frame")
    add_chain_arg(parser, "the chains the model was trained on")
    add_renamed(parser, "--maps", old=("--map",), required=True, nargs="+", type=Path,
                help="map files, a folder of them, or a CSV with a 'map' column, as for train")
    parser.add_argument("-o", "--output", required=True, type=Path,
                        help="one map: the model file (.pdb or .cif); several: a new or empty folder")
    add_overwrite_arg(parser, f"the --output file and its validity table, or the --output folder's earlier fit (its "
                              f"{TABLE}, {VALIDITY} and the models they list, removed when fitting starts)")
    parser.add_argument("--resume", action="store_true",
                        help=f"finish an interrupted fit into the --output folder: maps its {TABLE} lists, with "
                             "their model, are kept and not fitted again (give the same command otherwise)")
    add_relax_arg(parser)
    add_device_arg(parser)
    add_far_conformation_arg(parser)
    add_quiet_arg(parser, "a line per map")
    parser.add_argument("--refine", action="store_true",
                        help="refine each read-out into its map (refine.refine; adds correlation_readout, the "
                             "read-out's correlation before refinement, to the table)")
    parser.add_argument("--resolution", type=float, default=None,
                        help="the maps' resolution (Å), at which --refine renders the model (default: the model's "
                             "training resolution, 8 Å for the models cryosampler train writes; give it for 3–4 Å "
                             "maps)")
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
    if args.resume and args.overwrite:
        raise ValueError("--resume finishes the fit in --output and --overwrite replaces it; give one of them")
    if writes_one_file(args, maps):
        if args.resume:
            raise ValueError(f"--resume finishes a fit of several maps into a folder; --output {out} is one model")
        if out.is_dir():
            raise ValueError(f"--output {out} is a folder; give a file name ending in .pdb or .cif")
        table = validity_path(out)
        if table.is_dir():
            raise ValueError(f"{table} (written beside --output {out}) is a folder; give another --output name")
        refuse_inputs({table: f"{table} (written beside --output {out})"}, inputs + listings)
        check_writable(out.parent, f"--output {out}")
        refuse_existing({out: f"--output {out}", table: f"{table} (written beside --output {out})"}, args.overwrite)
        return
    if out.suffix.lower() in (".pdb", ".cif"):
        raise ValueError(f"--output {out}: {len(maps)} maps give one model each; give a folder for them")
    seen = {}
    for path in maps:
        other = seen.setdefault(model_name(path), path)
        if other != path:
            raise ValueError(f"--maps {path} and {other} would both be written as {model_name(path)}; give maps "
                             "with different names")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {out} is a file; give a new or empty folder for the models")
    if args.resume and not (out / TABLE).is_file():
        raise ValueError(f"--resume: {out} holds no {TABLE} of a fit to finish; leave out --resume to start")
    if out.is_dir() and any(out.iterdir()) and not (args.resume or args.overwrite):
        raise ValueError(f"--output {out} is not empty; pass --resume to finish an interrupted fit there, "
                         "--overwrite to replace an earlier fit, or give a new or empty folder for the models")
    check_writable(out if out.is_dir() else out.parent, f"--output {out}")


def main(args: argparse.Namespace) -> None:
    check_numbers(args)
    maps = resolve_maps(args.maps, args.reference)
    inputs = [args.reference, args.checkpoint, *maps]
    single = writes_one_file(args, maps)
    covers = [args.output, validity_path(args.output)] if single else [
        args.output, *(args.output / name for name in (TABLE, VALIDITY)), *(args.output / model_name(p) for p in maps)]
    with claimed(args.output, covers, lambda: check_outputs(args, inputs)):
        _fit(args, maps, single)


def _earlier_fit(folder: Path, maps: list[Path]):
    """For --resume: the rows of ``folder``'s fit and validity tables of those ``maps`` whose model is there, by
    map (the interrupted run wrote each model before its rows)."""
    import pandas as pd

    fits, validity = pd.read_csv(folder / TABLE), pd.read_csv(folder / VALIDITY)
    given = {str(p) for p in maps}
    kept = {}
    for (_, row), (_, checks) in zip(fits.iterrows(), validity.iterrows()):
        if row["map"] in given and Path(row["model"]).is_file():
            kept[row["map"]] = (row.to_dict(), checks.to_dict())
    return kept


def _remove_earlier_fit(folder: Path) -> None:
    """For --overwrite: remove the fit in ``folder``: its tables and the models they list; other files stay."""
    import pandas as pd

    if (folder / TABLE).is_file():
        for model in pd.read_csv(folder / TABLE)["model"]:
            if Path(model).parent == folder:
                Path(model).unlink(missing_ok=True)
    for name in (TABLE, VALIDITY):
        (folder / name).unlink(missing_ok=True)


def _fit(args: argparse.Namespace, maps: list[Path], single: bool) -> None:
    """Fit the maps into the claimed --output (:func:`main`)."""
    # Imported only now (torch and ProDy take seconds), so usage and output errors come at once.
    import numpy as np
    import pandas as pd

    from cryosampler.device import resolve_device
    from cryosampler.ingest import ingest_map
    from cryosampler.reference import prepare_reference
    from cryosampler.readout import fit_map
    from cryosampler.physics.nma_fit import NMA_FIT_PRESETS
    from cryosampler.refine import REFINE_PRESETS
    from cryosampler.evaluation.validate import sample_validity, validity_summary, validity_warning
    from cryosampler.io.atomic_files import write_mmcif, write_pdb
    from cryosampler.io.files import atomic_path
    from cryosampler.physics.superpose import rmsd
    from cryosampler.model.checkpoint import load_checkpoint, model_from_checkpoint

    device = resolve_device(args.device)
    state = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(state)
    reference = read_model_reference(args.reference, args.chain, state, quiet=args.quiet)
    if args.relax:
        check_relax(reference, args.reference)
    nearest_training_protein(state, reference.sequence, args.reference)
    placed = prepare_reference(model, reference, source=str(args.reference))
    if args.refine and args.resolution is None and not args.quiet:
        print(f"cryosampler: note: --refine renders the models at the model's {model.config.grid.resolution:g} Å; "
              "for maps of higher resolution give theirs, e.g. --resolution 3.5", file=sys.stderr)
    centre = placed.place.inverse().apply(np.zeros(3))  # map frame: the model box's centre

    relaxation = Relaxation(reference) if args.relax else None
    kept = {}
    if not single:
        args.output.mkdir(parents=True, exist_ok=True)
        if args.resume:
            kept = _earlier_fit(args.output, maps)
        if args.overwrite:
            _remove_earlier_fit(args.output)
    tic, rows, written = time.perf_counter(), [], 0
    fresh = {}  # row index → (coords (N, 3) Å, validity row) of each model fitted by this run

    def validity_rows(one_batch: bool) -> pd.DataFrame:
        """Each model's validity, in map order, the kept ones as the interrupted run wrote them. one_batch: this
        run's models in one batch, as the finished table was always computed (its rms deviations round in the last
        bit by batch size); otherwise each model's row of when it was fitted."""
        new = {k: checks for k, (_, checks) in fresh.items()}
        if one_batch and fresh:
            table = sample_validity(np.stack([coords for coords, _ in fresh.values()]), reference)
            new = dict(zip(fresh, table.drop(columns="sample").to_dict("records")))
        return pd.DataFrame([{"map": row["map"], "model": row["model"], **new[k]} if k in new else kept[row["map"]][1]
                             for k, row in enumerate(rows)])

    try:
        for k, path in enumerate(maps, start=1):
            if str(path) in kept:  # --resume: fitted by the interrupted run
                rows.append(kept[str(path)][0])
                continue
            volume, _ = ingest_map(path, model.config.grid, reference.coords, reference.atomic_numbers, centre,
                                   probes=not args.allow_far_conformation, res_nums=reference.res_nums)
            result = fit_map(model, reference, placed, volume, device, recycle=args.recycle,
                             refinement=REFINE_PRESETS["default"] if args.refine else None, resolution=args.resolution,
                             normal_modes=NMA_FIT_PRESETS["default"] if args.normal_modes else None)
            coords = result.coords
            row = {"map": str(path), "model": str(args.output if single else args.output / model_name(path)),
                   "correlation_reference": result.correlation_reference,
                   **({"correlation_readout": result.correlation_readout} if args.refine else {}),
                   "correlation_fitted": result.correlation_fitted, "rmsd_to_reference": rmsd(coords, reference.coords),
                   **({"start": result.start} if args.normal_modes else {})}
            # Before relaxation: the read-out's distance from the reference.
            refined = (f" → {result.correlation_fitted:.3f} (refined from the {result.start})" if args.refine
                       else " (fitted)")
            line = (f"map {k}/{len(maps)} {path}: map–model correlation {result.correlation_reference:.3f} (reference) "
                    f"→ {result.correlation_readout:.3f}{' (read out)' if args.refine else ''}{refined}, "
                    f"{row['rmsd_to_reference']:.2f} Å from the reference")
            if relaxation is not None:
                coords = relaxation(coords[None])[0]
                row["rmsd_to_reference"] = rmsd(coords, reference.coords)
            fresh[len(rows)] = coords, sample_validity(coords[None], reference).drop(columns="sample").iloc[0].to_dict()
            rows.append(row)
            if single:
                # Both files under temporary names, renamed at the end of the block.
                with atomic_path(validity_path(args.output)) as tmp:
                    validity_rows(one_batch=True).to_csv(tmp, index=False)
                    (write_mmcif if args.output.suffix.lower() == ".cif" else write_pdb)(args.output, reference, coords)
            else:  # each model as it is fitted, so that an interrupted fit keeps it; then the tables so far
                write_pdb(args.output / model_name(path), reference, coords)
                with atomic_path(args.output / TABLE) as fits, atomic_path(args.output / VALIDITY) as table:
                    pd.DataFrame(rows).to_csv(fits, index=False)
                    validity_rows(one_batch=False).to_csv(table, index=False)
            written += 1
            if not args.quiet:  # once the model is written: a map named here is kept if the fit is interrupted
                print(line, file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        if single or not kept and not written:
            raise
        raise KeyboardInterrupt(f"kept the models of {len(kept) + written} of {len(maps)} maps in {args.output}; the "
                                "same command with --resume fits the rest") from None
    validity = validity_rows(one_batch=True)
    if not single and fresh:
        with atomic_path(args.output / VALIDITY) as table:
            validity.to_csv(table, index=False)
    fitted = len(maps) - len(kept)
    if single:
        where = f"{args.output} and {validity_path(args.output)}"
    else:
        where = f"{args.output} (one model per map, {TABLE} and {VALIDITY})"
    earlier = f" ({len(kept)} more kept from the interrupted fit)" if kept else ""
    print(f"fitted {fitted} map(s){earlier} in {time.perf_counter() - tic:.1f} s; wrote {where}", file=sys.stderr)
    if relaxation is not None and fitted:
        print(relaxation.summary(), file=sys.stderr)
    print(f"validity: {validity_summary(validity, reference, noun='models')}", file=sys.stderr)
    broken = validity_warning(validity, noun="models")
    if broken is not None:
        print(f"cryosampler: WARNING: {broken}", file=sys.stderr)
