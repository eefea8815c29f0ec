"""The command line's subcommands, one module each (as cryoDRGN's ``commands/``): each has ``add_args(parser)``
and ``main(args)``; :mod:`cryosampler.cli` builds the parser and turns errors into exit codes.

Helpers shared by the subcommands live here.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["int_at_least", "same_path", "check_writable", "refuse_inputs", "add_fit_probes_arg",
           "nearest_training_protein", "KNOWN_IDENTITY"]

# Below this sequence identity to every protein a model was trained on, its output is a guess, not a prediction.
KNOWN_IDENTITY = 0.9


def int_at_least(minimum: int):
    """argparse type: an integer ≥ ``minimum`` (a usage error, exit 2, otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer ≥ {minimum}, got {value}")
        return value

    return parse


def same_path(a: Path, b: Path) -> bool:
    """True if ``a`` and ``b`` name one file: samefile when both exist (links, case-insensitive systems)."""
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_writable(directory: Path, what: str) -> None:
    """ValueError unless ``directory``, or its nearest existing ancestor (to be created below), is a
    writable directory."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what}: {existing} is a file, not a directory; choose another location")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what}: cannot write in directory {existing} (no permission or read-only); "
                         "choose another location")


def refuse_inputs(outputs: dict[Path, str], inputs: list[Path]) -> None:
    """ValueError if an output path is one of the ``inputs``: inputs are never overwritten. ``outputs`` maps each
    output path to how the message names it (``"--output run.pdb"``)."""
    for path, named in outputs.items():
        for given in inputs:
            if same_path(path, given):
                raise ValueError(f"{named} is the input {given}; inputs are never overwritten, choose another name")


def add_fit_probes_arg(parser: argparse.ArgumentParser) -> None:
    """--skip-fit-probes, for the commands that ingest maps (train, fit)."""
    parser.add_argument("--skip-fit-probes", action="store_true",
                        help="accept a map although a rigid-body fit moves the reference by more than 3 Å RMS (a map "
                             "of a conformation far from the reference's, superposed on all atoms rather than on a "
                             "rigid core, can); the correlation floor of 0.1 still applies (default: refuse)")


def nearest_training_protein(state: dict, sequence: str, source) -> tuple[str, float] | None:
    """(name, sequence identity) of the protein a checkpoint (``load_checkpoint``'s dict) was trained on that is
    nearest to ``sequence``, None for checkpoints that list none; warns on stderr, naming ``source``, below
    :data:`KNOWN_IDENTITY`."""
    import sys

    from cryosampler.io.correspondence import nearest_protein

    nearest = nearest_protein(sequence, state.get("proteins", []))
    if nearest is not None and nearest[1] < KNOWN_IDENTITY:
        print(f"cryosampler: WARNING: {source} is {nearest[1]:.0%} identical in sequence to the nearest protein "
              f"this model was trained on ({nearest[0]}); it never saw maps of this protein, so read its output "
              "as a guess, not a prediction", file=sys.stderr)
    return nearest
