"""``cryosampler traverse --checkpoint CKPT --reference my.pdb --between 0 1 -o walk.pdb``: the atomic trajectory of a
walk through a latent model's latent space, between two maps or along a principal component of the training maps."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from cryosampler.commands import (add_chain_arg, add_device_arg, add_far_conformation_arg, add_overwrite_arg,
                                  add_quiet_arg, check_writable, claimed, int_at_least, nearest_training_protein,
                                  read_model_reference, refuse_existing, refuse_inputs)
from cryosampler.commands.listing import MAP_SUFFIXES, is_map

__all__ = ["add_args", "main", "check_outputs", "output_paths", "endpoint", "HELP", "DESCRIPTION", "FRAMES",
           "SUFFIXES"]

FRAMES = 20  # --frames when not given: 100 graphics frames of playback (io.chimerax.PAUSE_FRAMES each)

# What -o takes: a multi-model PDB or mmCIF; the XTC, the table and the ChimeraX script are written beside it.
SUFFIXES = (".pdb", ".cif")

HELP = "walk a latent model's latent space and write the atomic trajectory"
DESCRIPTION = (
    "The structures a latent model (train --family latent) decodes along a path through its latent space, written "
    "as a trajectory in the reference's frame. --between A B walks the straight line between two maps' latents: "
    "each of A and B is an integer, the index (from 0, as in sample's <output>_populations.csv) of a training map "
    "in the checkpoint, whose latent is used as training froze it; else a training map's path exactly as the "
    "checkpoint lists it (the same); else a map file, ingested around the reference as fit ingests it and encoded "
    "to its posterior mean. --pc N walks the N-th principal component of the training maps' latent means (in the "
    "prior's standardised units; the maps of the protein nearest the reference), through their mean, from the "
    "smallest to the largest projection of a training map on it. Writes <output> (.pdb or .cif, one model per "
    "frame), <output>.xtc (its topology: the PDB, or <output>_topology.pdb beside a .cif), <output>.csv (per frame: "
    "the path parameter, the latent, RMSD to the reference and to the first frame, validity) and <output>.cxc (a "
    "ChimeraX script that plays the walk). Inputs are never overwritten; existing outputs are refused unless "
    "--overwrite is given, and then replaced only when the run succeeds.")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="checkpoint.pt of a latent model (cryosampler train --family latent)")
    parser.add_argument("--reference", required=True, type=Path,
                        help="reference structure (.pdb or .cif), fitted into any map given by file to --between")
    add_chain_arg(parser, "the chains the model was trained on")
    path = parser.add_mutually_exclusive_group(required=True)
    path.add_argument("--between", nargs=2, metavar=("A", "B"),
                      help="walk from map A to map B: each an index of a training map in the checkpoint (from 0), a "
                           "training map's path as the checkpoint lists it, or a map file "
                           f"({', '.join(MAP_SUFFIXES)}) to encode")
    path.add_argument("--pc", type=int, metavar="N",
                      help="walk the N-th (from 1) principal component of the training maps' latent means, from the "
                           "smallest to the largest projection of a training map")
    parser.add_argument("--frames", type=int_at_least(2), default=FRAMES,
                        help=f"structures along the path, both ends included (default {FRAMES})")
    parser.add_argument("-o", "--output", required=True, type=Path,
                        help="trajectory file: multi-model .pdb or .cif; <output>.xtc, <output>.csv and <output>.cxc "
                             "(and <output>_topology.pdb beside a .cif) are written beside it")
    parser.add_argument("--batch-size", type=int_at_least(1), default=16,
                        help="latents decoded together; memory grows with it, not with --frames (default 16)")
    add_overwrite_arg(parser, "the --output file and the files written beside it")
    add_far_conformation_arg(parser)
    add_device_arg(parser)
    add_quiet_arg(parser, "a line per map file encoded")


def output_paths(args: argparse.Namespace) -> dict[str, Path]:
    """The files a run writes: ``trajectory`` (--output itself), ``xtc`` (the same frames for MD tools), ``table``
    (one row per frame), ``script`` (ChimeraX), and for an mmCIF --output ``topology`` (the reference's atoms, the
    XTC's topology; a PDB --output is its own)."""
    out = args.output
    paths = {"trajectory": out, "xtc": out.with_suffix(".xtc"), "table": out.with_suffix(".csv"),
             "script": out.with_suffix(".cxc")}
    if out.suffix.lower() == ".cif":
        paths["topology"] = out.with_name(out.stem + "_topology.pdb")
    return paths


def check_outputs(args: argparse.Namespace, inputs: list[Path]) -> None:
    """Refuse an --output that is no .pdb or .cif, outputs that would overwrite an input (``inputs``: the
    reference, the checkpoint and the map files given) or exist, or cannot be written, before any work."""
    out = args.output
    if out.suffix.lower() not in SUFFIXES:
        raise ValueError(f"--output must end in {' or '.join(SUFFIXES)} (the .xtc is written beside it), got {out}")
    named = {path: f"--output {out}" if path == out else f"{path} (written beside --output {out})"
             for path in output_paths(args).values()}
    for path, what in named.items():
        if path.is_dir():
            raise ValueError(f"{what} is a directory; give another --output name")
    refuse_inputs(named, inputs)
    check_writable(out.parent, f"--output {out}")
    refuse_existing(named, args.overwrite)


def endpoint(text: str, maps: list[dict]) -> int | Path:
    """What one --between value names, by the rule of :data:`DESCRIPTION`: the index of a training map (``maps``, the
    checkpoint's list) or a map file's path. ValueError for an index out of range or a value that is neither."""
    try:
        index = int(text)
    except ValueError:
        listed = [m["map"] for m in maps]
        if text in listed:
            return listed.index(text)
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"--between {text}: neither a training map's index (0 to {len(maps) - 1}) or path as "
                             "the checkpoint lists it, nor a map file") from None
        if not is_map(path):
            raise ValueError(f"--between {text}: not a map file ({', '.join(MAP_SUFFIXES)})") from None
        return path
    if not 0 <= index < len(maps):
        raise ValueError(f"--between {text}: no training map of that index; the checkpoint lists {len(maps)} "
                         f"(0 to {len(maps) - 1})")
    return index


def _map_files(args: argparse.Namespace) -> list[Path]:
    """The --between values that name map files, as far as can be told without the checkpoint (for the inputs that
    outputs must not overwrite)."""
    return [Path(text) for text in (args.between or []) if Path(text).is_file()]


def main(args: argparse.Namespace) -> None:
    outputs = output_paths(args)
    inputs = [args.reference, args.checkpoint, *_map_files(args)]
    with claimed(args.output, list(outputs.values()), lambda: check_outputs(args, inputs)):
        _traverse(args)


def _traverse(args: argparse.Namespace) -> None:
    """Walk the latent space into the claimed --output (:func:`main`)."""
    # Imported only now (torch and ProDy take seconds), so usage and output errors come at once.
    import numpy as np
    import pandas as pd

    from cryosampler.device import resolve_device
    from cryosampler.evaluation.validate import sample_validity, validity_summary, validity_warning
    from cryosampler.ingest import ingest_map
    from cryosampler.io.atomic_files import EnsembleWriter, write_pdb
    from cryosampler.io.chimerax import traverse_script
    from cryosampler.io.files import atomic_path
    from cryosampler.io.trajectory import XtcWriter
    from cryosampler.latent_sampling import decode_in_reference_frame, encode_map, latent_path, map_principal_path
    from cryosampler.model.checkpoint import family_of, load_checkpoint, model_from_checkpoint
    from cryosampler.physics.superpose import rmsd_matrix
    from cryosampler.reference import prepare_reference

    state = load_checkpoint(args.checkpoint)
    if family_of(state) != "latent":
        raise ValueError(f"{args.checkpoint} holds a map-family model; traverse needs a latent model; train one with "
                         "--family latent")
    if state["stage"] < 2:
        raise ValueError(f"{args.checkpoint} holds stage 1 of a latent model only (its training stopped before "
                         "stage 2); finish it with cryosampler train --family latent --resume")
    maps = state["maps"]
    ends = [endpoint(text, maps) for text in args.between] if args.between else []
    if len(ends) == 2 and ends[0] == ends[1]:
        raise ValueError(f"--between {args.between[0]} {args.between[1]} names one map twice; give two maps")
    model = model_from_checkpoint(state)
    d = model.config.autoencoder.latent_dim
    reference = read_model_reference(args.reference, args.chain, state, quiet=args.quiet)
    nearest = nearest_training_protein(state, reference.sequence, args.reference)
    slot = [p["name"] for p in state["proteins"]].index(nearest[0]) if nearest is not None else 0
    if args.pc is not None:
        count = sum(m["protein"] == slot for m in maps)
        if not 1 <= args.pc <= d:
            raise ValueError(f"--pc {args.pc}: the latent space has {d} dimensions, so components 1 to {d}")
        if args.pc > count - 1:
            raise ValueError(f"--pc {args.pc}: the {count} training map(s) of {state['proteins'][slot]['name']} vary "
                             f"along {count - 1} principal component(s) at most")
    placed = prepare_reference(model, reference, source=str(args.reference))
    device = resolve_device(args.device)
    model.to(device).eval()

    tic = time.perf_counter()
    if args.pc is not None:
        latents, position = map_principal_path(model, args.pc, args.frames, slot)
        parameter, what = "projection", f"along principal component {args.pc} of the training maps' latent means"
    else:
        centre = placed.place.inverse().apply(np.zeros(3))  # reference's frame: the model box's centre
        points = []
        for end in ends:
            if isinstance(end, int):
                points.append(model.map_mean[end].double().cpu().numpy())
                continue
            volume, correlation = ingest_map(end, model.config.grid, reference.coords, reference.atomic_numbers, centre,
                                             probes=not args.allow_far_conformation, res_nums=reference.res_nums)
            points.append(encode_map(model, reference, placed, volume))
            if not args.quiet:
                print(f"map {end}: map–model correlation {correlation:.3f}, encoded", file=sys.stderr, flush=True)
        latents, position = latent_path(points[0], points[1], args.frames)
        parameter = "t"
        named = [f"training map {e} ({maps[e]['map']})" if isinstance(e, int) else f"map file {e}" for e in ends]
        what = f"from {named[0]} to {named[1]}"
    coords = decode_in_reference_frame(model, placed, latents, args.batch_size)  # (F, N, 3) Å, reference's frame
    table = pd.DataFrame({"frame": np.arange(1, args.frames + 1), parameter: position})
    for k in range(d):
        table[f"z{k + 1}"] = latents[:, k]
    table["rmsd_to_reference"] = rmsd_matrix(coords, reference.coords[None])[:, 0]
    table["rmsd_to_first"] = rmsd_matrix(coords, coords[:1])[:, 0]
    validity = sample_validity(coords, reference).drop(columns="sample")
    table = pd.concat([table, validity], axis=1)

    outputs = output_paths(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        # Every file is written under a temporary name and renamed at the end of the block, when all succeeded.
        stack.enter_context(EnsembleWriter(args.output, reference)).write(coords)
        stack.enter_context(XtcWriter(outputs["xtc"], reference.n_atoms)).write(coords)
        written = {name: stack.enter_context(atomic_path(path)) for name, path in outputs.items()
                   if name in ("table", "script", "topology")}
        table.to_csv(written["table"], index=False)
        if "topology" in written:
            write_pdb(written["topology"], reference)
        written["script"].write_text(traverse_script(outputs["script"], args.reference, args.output, args.frames,
                                                     args.output.with_suffix(".mp4")))
    print(f"wrote {args.frames} frames of {reference.name} {what} to {args.output} and {outputs['xtc']} "
          f"(topology {outputs.get('topology', args.output)}) in {time.perf_counter() - tic:.1f} s; per frame in "
          f"{outputs['table']}", file=sys.stderr)
    print(f"path: RMSD to the reference {table['rmsd_to_reference'].min():.2f}–{table['rmsd_to_reference'].max():.2f}"
          f" Å, last frame {table['rmsd_to_first'].iloc[-1]:.2f} Å from the first", file=sys.stderr)
    print(f"validity: {validity_summary(validity, reference, noun='frames')}", file=sys.stderr)
    print(f"ChimeraX: chimerax {outputs['script']} opens the reference and plays the walk", file=sys.stderr)
    broken = validity_warning(validity, noun="frames")
    if broken is not None:
        print(f"cryosampler: WARNING: {broken}; see {outputs['table']}", file=sys.stderr)
