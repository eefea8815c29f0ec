"""``cryosampler report ensemble.pdb --reference my.pdb [--states a.pdb b.pdb]``: plots and tables of an ensemble
beside its reference (:mod:`cryosampler.evaluation.ensemble_analysis`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cryosampler.commands import (add_overwrite_arg, add_quiet_arg, check_writable, claimed, refuse_existing,
                                  refuse_inputs)

__all__ = ["add_args", "main", "check_outputs", "output_paths", "ensemble_kind", "HELP", "DESCRIPTION", "OUTPUTS"]

# What a report writes: name → the suffix added to the output prefix.
OUTPUTS = {"png": "_report.png", "pdf": "_report.pdf", "residues": "_report.csv", "samples": "_report_samples.csv"}
ENSEMBLE_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif")

HELP = "plot an ensemble beside its reference: RMSF, principal components, RMSD"
DESCRIPTION = (
    "Plots and tables of an ensemble (a multi-model PDB or mmCIF file, or an XTC trajectory with its topology PDB, "
    "as cryosampler sample writes them) beside its reference: each residue's CA fluctuation (RMSF) along the "
    "sequence under the reference's secondary structure (DSSP), the samples on the first two principal components "
    "of their CA positions with the reference and any --states marked, and the histogram of the samples' RMSD to "
    "the reference; every sample is first superposed on the reference. Writes PREFIX_report.png and .pdf (the "
    "figure), PREFIX_report.csv (one row per residue) and PREFIX_report_samples.csv (one row per sample, then per "
    "state). The ensemble needs at least 2 samples, with the reference's atoms in its order. Inputs are never "
    "overwritten; existing outputs are refused unless --overwrite is given, and then replaced only when the report "
    "succeeds.")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ensemble", type=Path, metavar="ENSEMBLE",
                        help="the samples: a multi-model .pdb or .cif (optionally .gz), or an .xtc trajectory")
    parser.add_argument("--reference", required=True, type=Path,
                        help="reference structure (.pdb or .cif) whose atoms the ensemble's samples hold")
    parser.add_argument("--chain", default=None,
                        help="chain(s) of the reference and the states: an ID, several joined by commas (A,B), or all "
                             "(default: the ensemble's chains, when the reference has them, else every protein chain; "
                             "for each state the reference's chains, when it has them)")
    parser.add_argument("--states", nargs="+", type=Path, default=[],
                        help="known conformations (.pdb or .cif) to mark among the samples; their CA atoms are "
                             "matched to the reference's by residue number, and every residue must have one")
    parser.add_argument("--topology", type=Path, default=None,
                        help="for an .xtc ensemble: the PDB file of its atoms (default ENSEMBLE_topology.pdb beside "
                             "it, as cryosampler sample --format xtc writes it)")
    # A string, not a Path: a trailing "/" (a folder to create) must survive.
    parser.add_argument("-o", "--output", default=None,
                        help="output prefix (results/cam writes results/cam_report.png, …) or a folder ending in / "
                             "or existing (receives ENSEMBLE-NAME_report.*); default: beside the ensemble, named "
                             "after it")
    add_overwrite_arg(parser, "the four report files")
    add_quiet_arg(parser, "the line saying what was read")


def _stem(path: Path) -> str:
    """The ensemble's name without its suffixes: ens.pdb.gz → ens."""
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    return name.rsplit(".", 1)[0]


def ensemble_kind(path: Path) -> str:
    """"xtc" or "models" (a multi-model PDB/mmCIF file), from the suffix; ValueError for any other."""
    name = path.name.lower()
    if name.endswith(".xtc"):
        return "xtc"
    if name.removesuffix(".gz").endswith(ENSEMBLE_SUFFIXES):
        return "models"
    raise ValueError(f"{path}: an ensemble is a multi-model .pdb or .cif file (optionally .gz) or an .xtc "
                     "trajectory; give one of those")


def output_paths(args: argparse.Namespace) -> dict[str, Path]:
    """The files a report writes (:data:`OUTPUTS`), from --output (a prefix or a folder) or the ensemble's name."""
    given = args.output
    if given is None:
        prefix = args.ensemble.parent / _stem(args.ensemble)
    elif given.endswith(("/", os.sep)) or Path(given).is_dir():
        prefix = Path(given) / _stem(args.ensemble)
    else:
        prefix = Path(given)
        if prefix.suffix.lower() in (".png", ".pdf", ".csv"):
            raise ValueError(f"--output {given} is a prefix, not a file name: give --output "
                             f"{prefix.with_suffix('')} to write {prefix.with_suffix('').name}_report.png and the rest")
    return {name: prefix.with_name(prefix.name + suffix) for name, suffix in OUTPUTS.items()}


def check_outputs(args: argparse.Namespace, inputs: list[Path]) -> None:
    """Refuse outputs that would overwrite an input (the ensemble, its topology, the reference, the states), are
    folders or cannot be written, before anything is read."""
    outputs = output_paths(args)
    for path in outputs.values():
        if path.is_dir():
            raise ValueError(f"{path} (written by the report) is a folder; give another --output")
    named = {path: f"{path} (written by the report)" for path in outputs.values()}
    refuse_inputs(named, inputs)
    check_writable(outputs["png"].parent, f"--output {args.output or outputs['png'].parent}")
    refuse_existing(named, args.overwrite)


def main(args: argparse.Namespace) -> None:
    kind = ensemble_kind(args.ensemble)
    inputs = [args.ensemble, args.reference, *args.states]
    if kind == "xtc":
        if args.topology is None:
            args.topology = args.ensemble.with_name(_stem(args.ensemble) + "_topology.pdb")
        if not args.ensemble.is_file():
            raise ValueError(f"{args.ensemble}: no such ensemble file")
        if not args.topology.is_file():
            raise ValueError(f"{args.topology}: no such topology file; an .xtc ensemble needs the PDB file of its "
                             "atoms: give --topology")
        inputs.append(args.topology)
    elif args.topology is not None:
        raise ValueError(f"--topology {args.topology}: only an .xtc ensemble takes a topology; {args.ensemble} holds "
                         "its own atoms")
    outputs = output_paths(args)
    with claimed(outputs["png"], outputs.values(), lambda: check_outputs(args, inputs)):
        _report(args, kind, outputs)


def _report(args: argparse.Namespace, kind: str, outputs: dict[str, Path]) -> None:
    """Write the report's files, claimed by :func:`main`."""
    # Named in a write error's message (cli.main).
    args.output = str(outputs["png"].parent)
    # Imported only now (matplotlib and mdtraj take seconds), so usage and output errors come at once.
    from contextlib import ExitStack

    import matplotlib.pyplot as plt

    from cryosampler.evaluation.ensemble_analysis import ensemble_report, state_ca
    from cryosampler.evaluation.figures import plot_ensemble_report, write_figure
    from cryosampler.evaluation.validate import sample_validity, validity_warning
    from cryosampler.io.atomic_files import protein_chains, read_ensemble, read_structure
    from cryosampler.io.files import atomic_path
    from cryosampler.io.trajectory import read_xtc_ensemble, secondary_structure

    # By default the reference's chains are those the ensemble holds (sample writes the chains it was given), when
    # the reference has them all; else every protein chain.
    held = protein_chains(args.topology if kind == "xtc" else args.ensemble)
    chain = args.chain or (",".join(held) if set(held) <= set(protein_chains(args.reference)) else None)
    reference = read_structure(args.reference, chain=chain)
    samples = (read_xtc_ensemble(args.ensemble, args.topology, reference) if kind == "xtc"
               else read_ensemble(args.ensemble, reference))
    if len(samples) < 2:
        raise ValueError(f"{args.ensemble} holds {len(samples)} sample; a report needs at least 2 (fluctuations and "
                         "principal components describe how samples differ)")
    # Each state by its file name; by its path when two share a name.
    names = [p.stem for p in args.states]
    names = names if len(set(names)) == len(names) else [str(p) for p in args.states]

    def state_chain(path):
        """--chain; else the reference's chains when the state's file has them all, else every protein chain."""
        return args.chain or (reference.chain_id if set(reference.chain_id.split(",")) <= set(protein_chains(path))
                              else None)

    states = {name: state_ca(read_structure(path, chain=state_chain(path)), reference, str(path))
              for name, path in zip(names, args.states)}
    if not args.quiet:
        print(f"read {len(samples)} samples of {reference.name} ({reference.n_atoms} atoms) from {args.ensemble}"
              + (f" and {len(states)} known states" if states else ""), file=sys.stderr, flush=True)

    report = ensemble_report(samples, reference, states, secondary_structure(reference))
    fig = plot_ensemble_report(report)
    outputs["png"].parent.mkdir(parents=True, exist_ok=True)
    try:
        with ExitStack() as stack:
            # Every file under a temporary name, all renamed into place at the end of the block.
            written = {name: stack.enter_context(atomic_path(path)) for name, path in outputs.items()}
            write_figure(fig, written["png"], "png")
            write_figure(fig, written["pdf"], "pdf")
            report.residue_table().to_csv(written["residues"], index=False)
            report.sample_table().to_csv(written["samples"], index=False)
    finally:
        plt.close(fig)
    print(f"report: {report.summary()}; wrote {outputs['png']}, {outputs['pdf'].name}, {outputs['residues'].name} "
          f"(per residue) and {outputs['samples'].name} (per sample)", file=sys.stderr)
    broken = validity_warning(sample_validity(samples, reference))
    if broken is not None:  # an RMSF of broken samples plots their breakage
        print(f"cryosampler: WARNING: {broken}", file=sys.stderr)
