"""``cryosampler train --reference model.pdb --maps vols/ --out run/``: train on one protein's cryo-EM maps.

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
from cryosampler.files import atomic_path

__all__ = ["add_args", "main", "resolve_maps", "MAP_SUFFIXES", "OUTPUTS", "HELP", "DESCRIPTION"]

MAP_SUFFIXES = (".mrc", ".map", ".ccp4", ".mrc.gz", ".map.gz", ".ccp4.gz")
OUTPUTS = ("checkpoint.pt", "train_log.csv", "config.json")  # what --out receives

HELP = "train a model on cryo-EM maps of one protein"
DESCRIPTION = (
    "Train CryoSampler on maps of one protein (for example the volumes of a heterogeneous reconstruction) and "
    "the atomic model fitted into them. Each map is resampled onto the model's grid (2 Å voxels, 64³) around "
    "the reference, at its own voxel size, origin and axis order, and scaled to the reference's rendered "
    "density; a map that does not contain the reference, or that the reference is not fitted into, is "
    "refused before anything is written. The model's frame is the reference's own, centred. --out receives "
    "checkpoint.pt, train_log.csv and config.json; `cryosampler sample --checkpoint OUT/checkpoint.pt` then "
    "samples it. Launch with torchrun for several processes.")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", required=True, type=Path,
                        help="atomic model fitted into the maps (.pdb or .cif), in the maps' frame")
    parser.add_argument("--chain", default=None, help="chain to use (default: the first protein chain)")
    parser.add_argument("--maps", required=True, nargs="+", type=Path,
                        help=f"map files ({', '.join(MAP_SUFFIXES)}), a folder of them, or a CSV with a 'map' "
                             "column (and optional 'protein' and 'reference' columns; paths relative to the CSV)")
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


def _maps_from_csv(path: Path, reference: Path) -> list[Path]:
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"--maps {path}: not a readable CSV ({str(error).splitlines()[0]})") from None
    if "map" not in table.columns or table.empty:
        raise ValueError(f"--maps {path}: a CSV listing needs a 'map' column and at least one row "
                         f"(columns found: {', '.join(table.columns) or 'none'})")
    if "protein" in table.columns and table["protein"].nunique() > 1:
        names = ", ".join(table["protein"].dropna().unique())
        raise ValueError(f"--maps {path}: rows of several proteins ({names}); a model is trained on one "
                         "protein's maps here, so give one protein's rows")
    if "reference" in table.columns:
        for other in dict.fromkeys(table["reference"].dropna()):
            other_path = path.parent / other
            if not same_path(other_path, reference):
                raise ValueError(f"--maps {path}: rows name reference {other}, not --reference {reference}; "
                                 "maps of different proteins or models cannot share one reference")
    maps = [path.parent / m for m in table["map"].dropna()]
    if not maps:
        raise ValueError(f"--maps {path}: the 'map' column names no map")
    for m in maps:
        if not m.is_file():
            raise ValueError(f"--maps {path}: map {m} listed there does not exist")
    return maps


def check_outputs(args: argparse.Namespace, maps: list[Path]) -> None:
    """Refuse an --out that is a file, cannot be written, would overwrite an input, or holds a run that
    --resume was not asked to continue (or none that it was), and a batch that torchrun's processes cannot
    share."""
    out = args.out
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the run")
    check_writable(out if out.is_dir() else out.parent, f"--out {out}")
    for name in OUTPUTS:
        for given in [args.reference, *maps]:
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
    maps = resolve_maps(args.maps, args.reference)
    check_outputs(args, maps)
    # Imported only now (torch and ProDy take seconds), so usage and output errors come at once.
    import numpy as np
    import torch

    from cryosampler.device import resolve_device
    from cryosampler.encoder import ENCODER_PRESETS
    from cryosampler.featurize import featurize
    from cryosampler.frame import own_frame_template, placement
    from cryosampler.ingest import ingest_map, model_scale
    from cryosampler.model import ModelConfig
    from cryosampler.structure import read_structure
    from cryosampler.training import TrainConfig, TrainingExample, train

    if args.preset not in ENCODER_PRESETS:
        raise ValueError(f"--preset {args.preset!r} is not one of {', '.join(sorted(ENCODER_PRESETS))}")
    device = resolve_device(args.device)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    say = print if main_rank else (lambda *a, **k: None)
    model_config = ModelConfig(encoder=ENCODER_PRESETS[args.preset])
    grid = model_config.grid
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed, precision=args.precision,
                         log_every=args.log_every)
    reference = read_structure(args.reference, chain=args.chain)
    template = own_frame_template(reference)
    to_model = placement(reference, template)  # a translation: the reference's centroid to the origin
    model_coords = to_model.apply(reference.coords)
    centre = -to_model.translation  # (3,) Å, map frame: where the model's box is centred
    protein = featurize(reference, model_coords, tokens=model_config.encoder.tokens)

    examples, rows = [], []
    for k, path in enumerate(maps, start=1):
        volume, correlation = ingest_map(path, grid, reference.coords, reference.atomic_numbers, centre,
                                         probes=not args.skip_fit_probes)
        scale = model_scale(volume, model_coords, reference.atomic_numbers, grid)
        examples.append(TrainingExample(protein, torch.from_numpy(np.float32(scale) * volume)))
        rows.append({"map": str(path), "correlation": correlation, "scale": scale})
        say(f"map {k}/{len(maps)} {path}: map–model correlation {correlation:.3f}", file=sys.stderr, flush=True)

    resolved = {"reference": str(args.reference), "chain": reference.chain_id, "maps": rows,
                "device": str(device), "processes": int(os.environ.get("WORLD_SIZE", "1")),
                "model_config": model_config.to_dict(), "train_config": dataclasses.asdict(config)}
    tic = time.perf_counter()
    if main_rank and not args.resume:  # a resumed run keeps the config.json it started with
        args.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.out / "config.json") as tmp:
            tmp.write_text(json.dumps(resolved, indent=2) + "\n")
    train(examples, model_config, config, template, args.out, progress=not args.quiet, device=device)
    say(f"trained {args.steps} steps on {len(maps)} maps of {reference.name} ({reference.n_atoms} atoms) in "
        f"{time.perf_counter() - tic:.0f} s; wrote {args.out / 'checkpoint.pt'}. Sample it with: cryosampler "
        f"sample --checkpoint {args.out / 'checkpoint.pt'} --reference {args.reference} -n 16 -o ensemble.pdb",
        file=sys.stderr)
