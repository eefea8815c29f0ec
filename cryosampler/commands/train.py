"""``cryosampler train --reference model.pdb --maps vols/ -o run/``: train on one protein's cryo-EM maps, or
``cryosampler train --maps proteins.csv -o run/`` on several proteins' (rows: protein, reference, map).

Under torchrun (``torchrun --nproc-per-node N -m cryosampler train …``) training uses DistributedDataParallel
through :func:`cryosampler.training.train`; every process ingests the maps, rank 0 alone writes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

from cryosampler.commands import (add_chain_arg, add_device_arg, add_far_conformation_arg, add_overwrite_arg,
                                  add_quiet_arg, add_renamed, check_writable, claimed, int_at_least, refuse_inputs)
from cryosampler.commands.listing import MAP_SUFFIXES, map_weights, resolve_proteins
from cryosampler.io.files import atomic_path

__all__ = ["add_args", "main", "check_outputs", "OUTPUTS", "HELP", "DESCRIPTION"]

OUTPUTS = ("checkpoint.pt", "train_log.csv", "config.json")  # what the --output folder receives

# The map family's denoiser (issue 19, docs/decisions.md): two coordinate sets per map and eq. 5's loss weight
# floored at 1. On real motions the paper's single structure (--components 1 --weight-floor 0, which stays available
# and is what the notebooks of the paper's experiment train) returns the reference for every sample.
COMPONENTS = 2
WEIGHT_FLOOR = 1.0
# TrainConfig's defaults (tests/test_cli_train.py checks they agree), written out so that usage errors come before
# torch is imported.
STEPS = 3000
CHECKPOINT_EVERY = 250
LOG_EVERY = 100
# model.encoder's attention defaults (default_attention_window), written out for --help, as the ones above.
FULL_ATTENTION_TOKENS = 2048
ATTENTION_WINDOW = 256
# The model family `train` builds when --family is not given (model/checkpoint.py's FAMILIES): the latent family,
# chosen on notebooks 06 and 07's training proteins, where it gave the maps' populations and sound samples and the
# map family did not (docs/results.md, docs/decisions.md).
FAMILY = "latent"

HELP = "train a model on cryo-EM maps of one protein, or of several listed in a CSV"
DESCRIPTION = (
    "Train CryoSampler on maps of a protein (for example the volumes of a heterogeneous reconstruction) and "
    "the atomic model fitted into them. Each map is resampled onto the model's grid (2 Å voxels, 64³) around "
    "the reference, at its own voxel size, origin and axis order, and scaled to the reference's rendered "
    "density; a map that does not contain the reference, or that the reference is not fitted into, is "
    "refused before anything is written. The model's frame is the reference's own, centred. The -o/--output "
    "folder receives checkpoint.pt, train_log.csv and config.json; `cryosampler sample --checkpoint "
    "OUTPUT/checkpoint.pt` then samples it. The model is the latent family by default (a map autoencoder and a "
    "diffusion model over its latents, whose samples take the maps' populations, or the weights a 'weight' column "
    "gives them); --family map trains the paper's map-space model. Several proteins: give no --reference and one "
    "CSV with columns protein, reference and map (one reference per protein); each is then placed on its own "
    "principal axes. Launch the map family with torchrun for several processes.")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", type=Path, default=None,
                        help="atomic model fitted into the maps (.pdb or .cif), in the maps' frame (leave out "
                             "when --maps is a CSV whose 'reference' column names each protein's)")
    add_chain_arg(parser, "every protein chain")
    parser.add_argument("--box", type=int, default=None,
                        help="the model grid's voxels per side, a multiple of 16 (default: chosen from the "
                             "reference's extent: 64 with 2 Å voxels when it fits, larger or coarser when not)")
    parser.add_argument("--apix", type=float, default=None,
                        help="the model grid's voxel size in Å (default: 2, coarser above a 128³ box)")
    parser.add_argument("--attention-window", type=int_at_least(0), default=None,
                        help="attend within windows of this many consecutive tokens (residues; atoms for the "
                             "paper preset), shifted by half a window in every other block (an even number; 0: "
                             "every token attends to every other; "
                             f"default: {ATTENTION_WINDOW} for references of more than {FULL_ATTENTION_TOKENS} "
                             "tokens, else 0)")
    parser.add_argument("--maps", required=True, nargs="+", type=Path,
                        help=f"map files ({', '.join(MAP_SUFFIXES)}), a folder of them, or a CSV with a 'map' "
                             "column (and optional 'protein', 'reference' and 'weight' columns; paths relative to the "
                             "CSV; without --reference the 'reference' column is required; 'weight', e.g. a class's "
                             "particle count, sets how often each map is drawn: the populations to learn)")
    add_renamed(parser, "-o", "--output", old=("--out",), required=True, type=Path,
                help="a folder (created if missing) for checkpoint.pt, train_log.csv and config.json")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in the --output folder from its checkpoint, also one interrupted by "
                             "Ctrl-C, SIGTERM or a crash (default: refuse a folder that has one)")
    add_overwrite_arg(parser, "the --output folder's earlier run (its checkpoint.pt, train_log.csv and config.json, "
                              "removed when training starts)")
    parser.add_argument("--family", choices=("map", "latent"), default=FAMILY,
                        help="the model: map, the paper's diffusion over maps (read out through a mixture of renders); "
                             "latent, a map autoencoder whose latents a second diffusion model learns, with the "
                             f"maps' populations and weights (docs/results.md compares them; default {FAMILY})")
    parser.add_argument("--steps", type=int_at_least(1), default=None,
                        help=f"training steps (default {STEPS} for the map family, the preset's stage-1 steps for the "
                             "latent family; how long they take: README, 'Use it on your own maps')")
    parser.add_argument("--stage1-from", type=Path, default=None,
                        help="latent family: take stage 1 (the autoencoder) from this latent checkpoint of the same "
                             "proteins and train stage 2 alone, in seconds: e.g. to give the maps other weights")
    parser.add_argument("--checkpoint-every", type=int_at_least(1), default=CHECKPOINT_EVERY,
                        help=f"write checkpoint.pt every this many steps (default {CHECKPOINT_EVERY}); it is also "
                             "written at the end and when Ctrl-C or SIGTERM stops the run")
    parser.add_argument("--batch-size", type=int_at_least(1), default=8,
                        help="maps per step over all processes (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: weights, batches, noise (default 0)")
    # Presets and precisions are checked once torch is imported (the parser stays fast for usage errors).
    parser.add_argument("--preset", default="default",
                        help="encoder preset: default, paper (the paper's size, for a GPU) or smoke (default: default)")
    parser.add_argument("--precision", default="fp32", help="encoder arithmetic, fp32 or bf16 autocast (default fp32)")
    add_device_arg(parser)
    parser.add_argument("--log-every", type=int_at_least(1), default=None,
                        help=f"a progress line every this many steps (default {LOG_EVERY}); given, it prints the "
                             "lines under --quiet too")
    parser.add_argument("--components", type=int_at_least(1), default=COMPONENTS,
                        help="G coordinate sets per map, mixed by how well each explains the noisy map (a mixture "
                             f"of renders; default {COMPONENTS}; 1 is the paper's single structure)")
    parser.add_argument("--weight-floor", type=float, default=WEIGHT_FLOOR,
                        help="lower bound of eq. 5's min(SNR, γ) loss weight, so that the highest noise levels are "
                             f"trained too (default {WEIGHT_FLOOR:g}; 0 is the paper's weight)")
    parser.add_argument("--rotate", action="store_true",
                        help="turn each training map and its reference together by one of the 24 rotations of "
                             "the cube, drawn per example (augmentation, meant to help a model of several "
                             "proteins read new ones; see docs/results.md for its measurement)")
    add_far_conformation_arg(parser)
    add_quiet_arg(parser, "progress bar and step lines")


def check_outputs(args: argparse.Namespace, inputs: list[Path]) -> None:
    """Refuse an --output that is a file, cannot be written, would overwrite an input, holds a run (or files of
    one) that neither --resume nor --overwrite was given for, or no run for --resume, and a batch that
    torchrun's processes cannot share."""
    from cryosampler.device import torchrun_world_size  # no torch: this check comes before torch is loaded

    out = args.output
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {out} is a file; give a folder for the run")
    check_writable(out if out.is_dir() else out.parent, f"--output {out}")
    refuse_inputs({out / name: f"--output {out}: its {name}" for name in OUTPUTS}, inputs)
    processes = torchrun_world_size()
    if args.batch_size % processes:
        raise ValueError(f"--batch-size {args.batch_size} does not split evenly over {processes} processes; "
                         f"choose a multiple of {processes}")
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --output and --overwrite replaces it; give one of them")
    if args.overwrite and processes > 1:  # the other ranks would see the old checkpoint until rank 0 removes it
        raise ValueError(f"--overwrite is not taken under torchrun; move {out}'s run away first, or choose another "
                         "folder")
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists() and not (args.resume or args.overwrite):
        raise ValueError(f"--output {out} already holds a run ({checkpoint}); pass --resume to continue it, "
                         "--overwrite to start over in its place, or choose another folder")
    found = [name for name in OUTPUTS[1:] if (out / name).exists()]
    if args.resume and not checkpoint.exists():
        start = "pass --overwrite instead to start over" if found else "leave out --resume to start"
        raise ValueError(f"--resume: {out} holds no checkpoint.pt to continue (a run stopped before its first "
                         f"checkpoint has none); {start}")
    if found and not checkpoint.exists() and not args.overwrite:
        raise ValueError(f"--output {out} holds {' and '.join(found)} but no checkpoint.pt (files of yours, or of a "
                         "run killed before its first checkpoint); pass --overwrite to replace them, or choose "
                         "another folder")


def _recorded(protein: dict) -> dict:
    """What a checkpoint keeps of a training protein (``_ingest_proteins``' row): its name and sequence, which
    sample and fit match a reference against, and its chains, which they read by default."""
    return {"name": protein["name"], "sequence": protein["sequence"], "chain": protein["chain"]}


def _fitted_to(model_config, references: list, args: argparse.Namespace, say):
    """``model_config`` on the grid that holds every reference (io.grid.grid_for; --box, --apix), said when it is
    not the paper's 64³ × 2 Å; with a chain slot for each chain of the reference that has the most; and with
    attention windows (--attention-window; by default model.encoder.default_attention_window's), said when
    used."""
    from cryosampler.io.grid import MapGrid, grid_for

    radius = max(r.radius for r in references)
    grid = grid_for(radius, args.box, args.apix)
    if grid != MapGrid() and not args.quiet:
        say(f"model grid {grid.size}³ × {grid.apix:g} Å ({grid.box_length:.0f} Å box, maps rendered at "
            f"{grid.resolution:g} Å) for atoms up to {radius:.0f} Å from the centre", file=sys.stderr)
    chains = max(len(set(r.chain_ids)) for r in references)
    tokens = max(r.n_atoms if model_config.tokens == "atom" else r.n_residues for r in references)
    window = args.attention_window
    if window is not None and window % 2:
        raise ValueError(f"--attention-window {window}: give an even number of tokens (its half is the shift), "
                         "or 0 for full attention")
    if window is None:
        from cryosampler.model.encoder import default_attention_window

        window = default_attention_window(tokens)
    if window and not args.quiet:
        say(f"attention within windows of {window} tokens ({tokens} {model_config.tokens} tokens; --attention-window 0 "
            "for full attention)", file=sys.stderr)
    return dataclasses.replace(model_config, grid=grid).with_tokens(chains, window)


def _references(proteins: list[tuple[str, Path, list[Path]]], args: argparse.Namespace) -> list:
    """Each protein's reference Structure (its --chain)."""
    from cryosampler.io.atomic_files import read_structure

    return [read_structure(reference_path, chain=args.chain) for _, reference_path, _ in proteins]


def _ingest_proteins(proteins: list[tuple[str, Path, list[Path]]], references: list, args: argparse.Namespace,
                     model_config, say) -> tuple[list, list[dict], list[dict], list]:
    """Each protein's reference (``references``, in ``proteins``' order) placed in the model's frame and its maps
    ingested there: (training examples, one row per map for config.json, one entry per protein for the
    checkpoint, the reference Structures). Each reference is checked against the model before any of its maps is
    read."""
    import numpy as np
    import torch

    from cryosampler.ingest import ingest_map, to_model_units
    from cryosampler.model.featurize import featurize
    from cryosampler.physics.frame import own_placement, principal_placement
    from cryosampler.reference import check_takes
    from cryosampler.training import TrainingExample

    grid = model_config.grid
    n_maps = sum(len(maps) for *_, maps in proteins)
    examples, rows, known, structures, k = [], [], [], [], 0
    for (name, reference_path, maps), reference in zip(proteins, references):
        # One protein: its own centred, unrotated frame, so its maps, in the frame its reference was fitted in,
        # need only be re-centred. Several: each on its own principal axes, so that sampling can place a
        # reference given in any frame the same way; their maps are turned with them.
        to_model = own_placement(reference) if len(proteins) == 1 else principal_placement(reference)
        centre = to_model.inverse().apply(np.zeros(3))  # (3,) Å, map frame: where the model's box is centred
        protein = featurize(reference, to_model.apply(reference.coords), tokens=model_config.tokens)
        check_takes(model_config, protein, str(reference_path))  # before any map is read or anything written
        structures.append(reference)
        known.append({"name": name, "sequence": reference.sequence, "reference": str(reference_path),
                      "chain": reference.chain_id, "n_maps": len(maps)})
        for path in maps:
            k += 1
            volume, correlation = ingest_map(path, grid, reference.coords, reference.atomic_numbers, centre,
                                             probes=not args.allow_far_conformation, res_nums=reference.res_nums)
            volume, scale = to_model_units(volume, to_model, reference.coords, reference.atomic_numbers, grid)
            examples.append(TrainingExample(protein, torch.from_numpy(volume)))
            rows.append({"protein": name, "map": str(path), "correlation": correlation, "scale": scale})
            if not args.quiet:
                say(f"map {k}/{n_maps} {path}: map–model correlation {correlation:.3f}", file=sys.stderr, flush=True)
    return examples, rows, known, structures


def main(args: argparse.Namespace) -> None:
    proteins = resolve_proteins(args.maps, args.reference)
    from cryosampler.device import torchrun_rank  # no torch: this comes before torch is loaded

    inputs = [p for _, reference, maps in proteins for p in (reference, *maps)]
    if torchrun_rank() != 0:  # under torchrun rank 0 claims the folder for all, and alone writes there
        check_outputs(args, inputs)
        _train(args, proteins)
        return
    with claimed(args.output, [args.output / name for name in OUTPUTS], lambda: check_outputs(args, inputs)):
        _train(args, proteins)


def _train(args: argparse.Namespace, proteins: list[tuple[str, Path, list[Path]]]) -> None:
    """Train in the claimed --output folder (:func:`main`)."""
    # Imported only now (torch and ProDy take seconds), so usage and output errors come at once.
    from cryosampler.device import resolve_device, torchrun_rank, torchrun_world_size
    from cryosampler.model.denoiser import ModelConfig
    from cryosampler.model.diffusion import DiffusionConfig
    from cryosampler.model.encoder import ENCODER_PRESETS
    from cryosampler.model.checkpoint import load_checkpoint
    from cryosampler.physics.frame import own_frame_template
    from cryosampler.training import TrainConfig, train

    weights = map_weights(args.maps, [m for *_, maps in proteins for m in maps])
    if args.family == "latent":
        _train_latent(args, proteins, weights)
        return
    if args.stage1_from is not None:
        raise ValueError("--stage1-from takes stage 1 of a latent model; give it with --family latent")
    if args.preset not in ENCODER_PRESETS:
        raise ValueError(f"--preset {args.preset!r} is not one of {', '.join(sorted(ENCODER_PRESETS))}")
    args.steps = STEPS if args.steps is None else args.steps
    device = resolve_device(args.device)
    main_rank = torchrun_rank() == 0
    say = print if main_rank else (lambda *a, **k: None)
    encoder = dataclasses.replace(ENCODER_PRESETS[args.preset], components=args.components)
    if not args.weight_floor >= 0:
        raise ValueError(f"--weight-floor {args.weight_floor} must be a number ≥ 0")
    references = _references(proteins, args)
    model_config = _fitted_to(ModelConfig(encoder=encoder, diffusion=DiffusionConfig(weight_floor=args.weight_floor)),
                              references, args, say)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed, precision=args.precision,
                         log_every=args.log_every or LOG_EVERY, checkpoint_every=args.checkpoint_every,
                         rotate=args.rotate)
    examples, rows, known, structures = _ingest_proteins(proteins, references, args, model_config, say)
    # One protein: a template of its own CA atoms, so that sampling places its reference by superposition and
    # refuses other proteins; several: each on its own principal axes, no template (sample reports the nearest).
    template = own_frame_template(structures[0]) if len(structures) == 1 else None

    resolved = {"reference": None if args.reference is None else str(args.reference), "proteins": known,
                "maps": rows, "device": str(device), "processes": torchrun_world_size(),
                "model_config": model_config.to_dict(), "train_config": dataclasses.asdict(config)}
    checkpoint = args.output / "checkpoint.pt"
    start = load_checkpoint(checkpoint)["step"] if args.resume else 0
    tic = time.perf_counter()
    if main_rank and args.overwrite:  # the earlier run goes only now that the maps have been read
        for name in OUTPUTS:
            (args.output / name).unlink(missing_ok=True)
    if main_rank and not args.resume:  # a resumed run keeps the config.json it started with
        args.output.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.output / "config.json") as tmp:
            tmp.write_text(json.dumps(resolved, indent=2) + "\n")
    train(examples, model_config, config, template, args.output, progress=not args.quiet, device=device,
          proteins=tuple(_recorded(p) for p in known),
          lines=not args.quiet or args.log_every is not None, weights=weights)
    first = structures[0]
    what = f"{first.name} ({first.n_atoms} atoms)" if len(structures) == 1 else f"{len(structures)} proteins"
    if not start:
        steps = f"{args.steps} steps"
    elif start < args.steps:  # the steps this command ran, not the run's total
        steps = f"{args.steps - start} steps (resumed at step {start}, now at {args.steps})"
    else:
        steps = f"no steps (the run had already reached step {start} of {args.steps})"
    say(f"trained {steps} on {len(rows)} maps of {what} in {time.perf_counter() - tic:.0f} s; wrote {checkpoint}. "
        f"Sample it with: cryosampler sample --checkpoint {shlex.quote(str(checkpoint))} --reference "
        f"{shlex.quote(str(proteins[0][1]))} -n 16 -o ensemble.pdb", file=sys.stderr)


def _train_latent(args: argparse.Namespace, proteins: list[tuple[str, Path, list[Path]]],
                  weights: list[float] | None) -> None:
    """``--family latent``: both stages (latent_training.train_latent_model) in the claimed --output folder."""
    from cryosampler.device import resolve_device, torchrun_world_size
    from cryosampler.latent_training import AUTOENCODER_TRAIN_PRESETS, LATENT_TRAIN_PRESETS, train_latent_model
    from cryosampler.model.checkpoint import config_difference, family_of, load_checkpoint, model_from_checkpoint
    from cryosampler.model.latent_model import LATENT_MODEL_PRESETS, LatentModelConfig
    from cryosampler.physics.frame import own_frame_template

    if torchrun_world_size() > 1:
        raise ValueError("--family latent trains in one process; run it without torchrun (stage 1 runs on one GPU "
                         "with --device cuda)")
    if args.preset not in LATENT_MODEL_PRESETS:
        raise ValueError(f"--preset {args.preset!r}: the latent family's presets are "
                         f"{', '.join(sorted(LATENT_MODEL_PRESETS))}")
    unused = [name for name, given in (("--components", args.components != COMPONENTS),
                                       ("--weight-floor", args.weight_floor != WEIGHT_FLOOR),
                                       ("--rotate", args.rotate), ("--precision", args.precision != "fp32"))
              if given]
    if unused:
        raise ValueError(f"{unused[0]} applies to the map family; leave it out with --family latent")
    references = _references(proteins, args)
    model_config = _fitted_to(LATENT_MODEL_PRESETS[args.preset], references, args, print)
    stage1 = dataclasses.replace(AUTOENCODER_TRAIN_PRESETS[args.preset], batch_size=args.batch_size, seed=args.seed,
                                 **({} if args.steps is None else {"steps": args.steps}))
    stage2 = dataclasses.replace(LATENT_TRAIN_PRESETS[args.preset], seed=args.seed)
    device = resolve_device(args.device)
    checkpoint = args.output / "checkpoint.pt"
    source = args.stage1_from if args.stage1_from is not None else (checkpoint if args.resume else None)
    earlier = None
    if source is not None:
        earlier = load_checkpoint(source)
        if family_of(earlier) != "latent":
            raise ValueError(f"{source} holds a map-family model; --stage1-from and --resume of --family latent need "
                             "a latent checkpoint")
        differs = config_difference(LatentModelConfig.from_dict(earlier["model_config"]),
                                    model_config.with_proteins(len(proteins)))
        if differs is not None:
            raise ValueError(f"{source} holds another latent model than --preset {args.preset} with {len(proteins)} "
                             f"protein(s) gives ({differs}); give the same preset, proteins, chains and "
                             "--attention-window")
    examples, rows, known, structures = _ingest_proteins(proteins, references, args, model_config, print)
    names = [_recorded(p) for p in known]
    if earlier is not None and [(p["name"], p["sequence"]) for p in earlier["proteins"]] != [
            (p["name"], p["sequence"]) for p in names]:
        raise ValueError(f"{source} was trained on other proteins ({', '.join(p['name'] for p in earlier['proteins'])})"
                         "; stage 1 can be reused only for the same proteins")
    template = own_frame_template(structures[0]) if len(structures) == 1 else None
    slots = [i for i, (*_, maps) in enumerate(proteins) for _ in maps]
    for row, weight in zip(rows, weights or [1.0] * len(rows)):
        row["weight"] = weight
    maps = [{"map": row["map"], "protein": slot, "weight": row["weight"]} for row, slot in zip(rows, slots)]
    resolved = {"reference": None if args.reference is None else str(args.reference), "proteins": known,
                "maps": rows, "device": str(device), "processes": 1, "family": "latent",
                "model_config": model_config.to_dict(), "train_config": {"stage1": dataclasses.asdict(stage1),
                                                                        "stage2": dataclasses.asdict(stage2)},
                "stage1_from": None if args.stage1_from is None else str(args.stage1_from)}
    tic = time.perf_counter()
    if args.overwrite:  # the earlier run goes only now that the maps have been read
        for name in OUTPUTS:
            (args.output / name).unlink(missing_ok=True)
    args.output.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        with atomic_path(args.output / "config.json") as tmp:
            tmp.write_text(json.dumps(resolved, indent=2) + "\n")
    autoencoder = None if earlier is None else model_from_checkpoint(earlier).autoencoder
    train_latent_model(examples, model_config, stage1, stage2, template, args.output, names, maps, slots, weights,
                       autoencoder=autoencoder, progress=not args.quiet, device=device)
    first = structures[0]
    what = f"{first.name} ({first.n_atoms} atoms)" if len(structures) == 1 else f"{len(structures)} proteins"
    stages = (f"stage 2 on stage 1 of {source}" if earlier is not None
              else f"stage 1 ({stage1.steps} steps) and stage 2 ({stage2.steps} steps)")
    print(f"trained {stages} on {len(rows)} maps of {what} in {time.perf_counter() - tic:.0f} s; wrote {checkpoint}. "
          f"Sample it with: cryosampler sample --checkpoint {shlex.quote(str(checkpoint))} --reference "
          f"{shlex.quote(str(proteins[0][1]))} -n 100 -o ensemble.pdb", file=sys.stderr)
