"""``cryosampler train --reference model.pdb --maps vols/ --out run/``: train on one protein's cryo-EM maps, or
``cryosampler train --maps proteins.csv --out run/`` on several proteins' (rows: protein, reference, map).

Under torchrun (``torchrun --nproc-per-node N -m cryosampler train …``) training uses DistributedDataParallel
through :func:`cryosampler.training.train`; every process ingests the maps, rank 0 alone writes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from cryosampler.commands import add_fit_probes_arg, check_writable, int_at_least, same_path
from cryosampler.io.files import atomic_path

__all__ = ["add_args", "main", "resolve_maps", "resolve_proteins", "MAP_SUFFIXES", "OUTPUTS", "HELP", "DESCRIPTION"]

MAP_SUFFIXES = (".mrc", ".map", ".ccp4", ".mrc.gz", ".map.gz", ".ccp4.gz")
OUTPUTS = ("checkpoint.pt", "train_log.csv", "config.json")  # what --out receives

HELP = "train a model on cryo-EM maps of one protein, or of several listed in a CSV"
DESCRIPTION = (
    "Train CryoSampler on maps of a protein (for example the volumes of a heterogeneous reconstruction) and "
    "the atomic model fitted into them. Each map is resampled onto the model's grid (2 Å voxels, 64³) around "
    "the reference, at its own voxel size, origin and axis order, and scaled to the reference's rendered "
    "density; a map that does not contain the reference, or that the reference is not fitted into, is "
    "refused before anything is written. The model's frame is the reference's own, centred. --out receives "
    "checkpoint.pt, train_log.csv and config.json; `cryosampler sample --checkpoint OUT/checkpoint.pt` then "
    "samples it. Several proteins: give no --reference and one CSV with columns protein, reference and map (one "
    "reference per protein); each is then placed on its own principal axes. Launch with torchrun for several "
    "processes.")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", type=Path, default=None,
                        help="atomic model fitted into the maps (.pdb or .cif), in the maps' frame (leave out "
                             "when --maps is a CSV whose 'reference' column names each protein's)")
    parser.add_argument("--chain", default=None, help="chain to use (default: the first protein chain)")
    parser.add_argument("--maps", required=True, nargs="+", type=Path,
                        help=f"map files ({', '.join(MAP_SUFFIXES)}), a folder of them, or a CSV with a 'map' "
                             "column (and optional 'protein' and 'reference' columns; paths relative to the CSV; "
                             "without --reference the 'reference' column is required)")
    parser.add_argument("--out", required=True, type=Path, help="folder for checkpoint.pt, train_log.csv, config.json")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its checkpoint (default: refuse an --out that has one)")
    parser.add_argument("--steps", type=int_at_least(1), default=3000, help="training steps (default 3000)")
    parser.add_argument("--batch-size", type=int_at_least(1), default=8,
                        help="maps per step over all processes (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: weights, batches, noise (default 0)")
    # Presets and precisions are checked once torch is imported (the parser stays fast for usage errors).
    parser.add_argument("--preset", default="default",
                        help="encoder preset: default, paper (the paper's size, for a GPU) or smoke (default: default)")
    parser.add_argument("--precision", default="fp32", help="encoder arithmetic, fp32 or bf16 autocast (default fp32)")
    parser.add_argument("--device", default="auto",
                        help="auto (a GPU when CUDA is available, else the CPU), cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--log-every", type=int_at_least(1), default=100,
                        help="a progress line every this many steps (default 100)")
    parser.add_argument("--rotate", action="store_true",
                        help="turn each training map and its reference together by one of the 24 rotations of "
                             "the cube, drawn per example (augmentation, meant to help a model of several "
                             "proteins read new ones; see docs/results.md for its measurement)")
    add_fit_probes_arg(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _is_map(path: Path) -> bool:
    return path.name.lower().endswith(MAP_SUFFIXES)


def resolve_maps(given: list[Path], reference: Path) -> list[Path]:
    """The map files named by ``--maps``: files, folders (their maps, sorted by name) or one CSV.

    ValueError naming the path for a missing path, a folder without maps, a file that is not a map, an
    empty or malformed CSV, or a CSV whose rows name another reference or several proteins.
    """
    maps = []
    for path in given:
        if not path.exists():
            raise ValueError(f"--maps {path}: no such file or folder")
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and _is_map(p))
            if not found:
                raise ValueError(f"--maps {path}: the folder holds no map ({', '.join(MAP_SUFFIXES)})")
            maps += found
        elif path.suffix.lower() == ".csv":
            maps += _maps_from_csv(path, reference)
        elif _is_map(path):
            maps.append(path)
        else:
            raise ValueError(f"--maps {path}: not a map ({', '.join(MAP_SUFFIXES)}), folder or .csv listing")
    return list(dict.fromkeys(maps))


def _read_listing(path: Path):
    """The CSV listing ``path`` as a table of strings, with a 'map' column and a row; ValueError naming it."""
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"--maps {path}: not a readable CSV ({str(error).splitlines()[0]})") from None
    if "map" not in table.columns or table.empty:
        raise ValueError(f"--maps {path}: a CSV listing needs a 'map' column and at least one row "
                         f"(columns found: {', '.join(table.columns) or 'none'})")
    if table["map"].dropna().empty:
        raise ValueError(f"--maps {path}: the 'map' column names no map")
    return table


def _listed_maps(path: Path, names) -> list[Path]:
    """The maps a CSV ``path`` lists (``names``, relative to it), each once; ValueError for one that is missing."""
    maps = list(dict.fromkeys(path.parent / m for m in names))
    for m in maps:
        if not m.is_file():
            raise ValueError(f"--maps {path}: map {m} listed there does not exist")
    return maps


def _maps_from_csv(path: Path, reference: Path) -> list[Path]:
    table = _read_listing(path)
    if "protein" in table.columns and table["protein"].nunique() > 1:
        names = ", ".join(table["protein"].dropna().unique())
        raise ValueError(f"--maps {path}: rows of several proteins ({names}) under one --reference; leave out "
                         "--reference and give each row its protein's reference in a 'reference' column")
    if "reference" in table.columns:
        for other in dict.fromkeys(table["reference"].dropna()):
            other_path = path.parent / other
            if not same_path(other_path, reference):
                raise ValueError(f"--maps {path}: rows name reference {other}, not --reference {reference}; "
                                 "maps of different proteins or models cannot share one reference")
    return _listed_maps(path, table["map"].dropna())


def resolve_proteins(given: list[Path], reference: Path | None) -> list[tuple[str, Path, list[Path]]]:
    """The proteins to train on, [(name, reference, maps)]: with ``reference``, one protein (its maps by
    :func:`resolve_maps`, named after the reference file); without, from one CSV whose rows give each map's
    reference and optionally its protein's name (default: the reference as written there), paths relative to
    the CSV.

    ValueError naming the CSV for a missing --reference without such a CSV, a protein with two references,
    a reference under two protein names, a map under two proteins, a missing reference or map file, or what
    :func:`resolve_maps` refuses.
    """
    if reference is not None:
        return [(reference.stem, reference, resolve_maps(given, reference))]
    if len(given) != 1 or given[0].suffix.lower() != ".csv":
        raise ValueError("--reference is missing; give the atomic model fitted into the maps, or one CSV with "
                         "protein, reference and map columns as --maps")
    if not given[0].is_file():
        raise ValueError(f"--maps {given[0]}: no such file")
    path = given[0]
    table = _read_listing(path)
    if "reference" not in table.columns:
        raise ValueError(f"--maps {path}: without --reference the CSV needs a 'reference' column naming each "
                         "map's atomic model")
    table = table.dropna(subset=["map"])
    if table["reference"].isna().any():
        raise ValueError(f"--maps {path}: a row has a map but no reference; give every map its reference")
    names = table["protein"] if "protein" in table.columns else [None] * len(table)
    table["protein"] = [n if isinstance(n, str) else r for n, r in zip(names, table["reference"])]
    proteins, by_reference, by_map = [], {}, {}
    for name, rows in table.groupby("protein", sort=False):
        references = list(dict.fromkeys((path.parent / r).resolve() for r in rows["reference"]))
        if len(references) > 1:
            raise ValueError(f"--maps {path}: protein {name} has several references "
                             f"({', '.join(dict.fromkeys(rows['reference']))}); give one reference per protein")
        ref = path.parent / rows["reference"].iloc[0]
        other = by_reference.setdefault(references[0], name)
        if other != name:
            raise ValueError(f"--maps {path}: reference {ref} is given for proteins {other} and {name}; one "
                             "reference is one protein")
        if not ref.is_file():
            raise ValueError(f"--maps {path}: reference {ref} of protein {name} does not exist")
        maps = _listed_maps(path, rows["map"])
        for m in maps:
            other = by_map.setdefault(m.resolve(), name)
            if other != name:
                raise ValueError(f"--maps {path}: map {m} is listed for proteins {other} and {name}; a map shows "
                                 "one protein")
        proteins.append((str(name), ref, maps))
    return proteins


def check_outputs(args: argparse.Namespace, inputs: list[Path]) -> None:
    """Refuse an --out that is a file, cannot be written, would overwrite an input, or holds a run that
    --resume was not asked to continue (or none that it was), and a batch that torchrun's processes cannot
    share."""
    out = args.out
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the run")
    check_writable(out if out.is_dir() else out.parent, f"--out {out}")
    for name in OUTPUTS:
        for given in inputs:
            if same_path(out / name, given):
                raise ValueError(f"--out {out}: its {name} would overwrite the input {given}; choose another folder")
    processes = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun's
    if args.batch_size % processes:
        raise ValueError(f"--batch-size {args.batch_size} does not split evenly over {processes} processes; "
                         f"choose a multiple of {processes}")
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists() and not args.resume:
        raise ValueError(f"--out {out} already holds a run ({checkpoint}); pass --resume to continue it, or "
                         "choose another folder")
    if args.resume and not checkpoint.exists():
        raise ValueError(f"--resume: {out} holds no checkpoint.pt to continue; leave out --resume to start")


def main(args: argparse.Namespace) -> None:
    proteins = resolve_proteins(args.maps, args.reference)
    check_outputs(args, [p for _, reference, maps in proteins for p in (reference, *maps)])
    # Imported only now (torch and ProDy take seconds), so usage and output errors come at once.
    import numpy as np
    import torch

    from cryosampler.device import resolve_device
    from cryosampler.model.encoder import ENCODER_PRESETS
    from cryosampler.model.featurize import featurize
    from cryosampler.physics.frame import map_to_model_frame, own_frame_template, own_placement, principal_placement
    from cryosampler.ingest import ingest_map, model_scale
    from cryosampler.model.denoiser import ModelConfig
    from cryosampler.reference import check_takes
    from cryosampler.io.atomic_files import read_structure
    from cryosampler.training import TrainConfig, TrainingExample, train

    if args.preset not in ENCODER_PRESETS:
        raise ValueError(f"--preset {args.preset!r} is not one of {', '.join(sorted(ENCODER_PRESETS))}")
    device = resolve_device(args.device)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    say = print if main_rank else (lambda *a, **k: None)
    model_config = ModelConfig(encoder=ENCODER_PRESETS[args.preset])
    grid = model_config.grid
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed, precision=args.precision,
                         log_every=args.log_every, rotate=args.rotate)
    n_maps = sum(len(maps) for *_, maps in proteins)
    examples, rows, known, structures, k = [], [], [], [], 0
    for name, reference_path, maps in proteins:
        reference = read_structure(reference_path, chain=args.chain)
        # One protein: its own centred, unrotated frame, so its maps, in the frame its reference was fitted in,
        # need only be re-centred. Several: each on its own principal axes, so that sampling can place a
        # reference given in any frame the same way; their maps are turned with them.
        to_model = own_placement(reference) if len(proteins) == 1 else principal_placement(reference)
        model_coords = to_model.apply(reference.coords)
        centre = to_model.inverse().apply(np.zeros(3))  # (3,) Å, map frame: where the model's box is centred
        protein = featurize(reference, model_coords, tokens=model_config.encoder.tokens)
        check_takes(model_config, protein, str(reference_path))  # before any map is read or anything written
        structures.append(reference)
        known.append({"name": name, "sequence": reference.sequence, "reference": str(reference_path),
                      "chain": reference.chain_id, "n_maps": len(maps)})
        for path in maps:
            k += 1
            volume, correlation = ingest_map(path, grid, reference.coords, reference.atomic_numbers, centre,
                                             probes=not args.skip_fit_probes)
            volume = map_to_model_frame(volume, to_model)  # unchanged for one protein (no rotation)
            scale = model_scale(volume, model_coords, reference.atomic_numbers, grid)
            examples.append(TrainingExample(protein, torch.from_numpy(np.float32(scale) * volume)))
            rows.append({"protein": name, "map": str(path), "correlation": correlation, "scale": scale})
            say(f"map {k}/{n_maps} {path}: map–model correlation {correlation:.3f}", file=sys.stderr, flush=True)
    # One protein: a template of its own CA atoms, so that sampling places its reference by superposition and
    # refuses other proteins; several: each on its own principal axes, no template (sample reports the nearest).
    template = own_frame_template(structures[0]) if len(structures) == 1 else None

    resolved = {"reference": None if args.reference is None else str(args.reference), "proteins": known,
                "maps": rows, "device": str(device), "processes": int(os.environ.get("WORLD_SIZE", "1")),
                "model_config": model_config.to_dict(), "train_config": dataclasses.asdict(config)}
    tic = time.perf_counter()
    if main_rank and not args.resume:  # a resumed run keeps the config.json it started with
        args.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.out / "config.json") as tmp:
            tmp.write_text(json.dumps(resolved, indent=2) + "\n")
    train(examples, model_config, config, template, args.out, progress=not args.quiet, device=device,
          proteins=tuple({"name": p["name"], "sequence": p["sequence"]} for p in known))
    first = structures[0]
    what = f"{first.name} ({first.n_atoms} atoms)" if len(structures) == 1 else f"{len(structures)} proteins"
    say(f"trained {args.steps} steps on {n_maps} maps of {what} in {time.perf_counter() - tic:.0f} s; wrote "
        f"{args.out / 'checkpoint.pt'}. Sample it with: cryosampler sample --checkpoint "
        f"{args.out / 'checkpoint.pt'} --reference {proteins[0][1]} -n 16 -o ensemble.pdb", file=sys.stderr)
