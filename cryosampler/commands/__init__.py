"""The command line's subcommands, one module each (as cryoDRGN's ``commands/``): each has ``add_args(parser)``
and ``main(args)``; :mod:`cryosampler.cli` builds the parser and turns errors into exit codes.

Helpers shared by the subcommands live here, among them the options all three spell alike (README, "Command-line
options"), and :func:`add_renamed` for an option whose old spelling still works for one release.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cryosampler.io.files import check_unclaimed, claim_output

__all__ = ["int_at_least", "same_path", "check_writable", "refuse_inputs", "refuse_existing", "claimed",
           "add_overwrite_arg", "Renamed", "add_renamed", "add_device_arg",
           "add_quiet_arg", "add_far_conformation_arg", "add_relax_arg", "check_relax", "Relaxation",
           "nearest_training_protein", "KNOWN_IDENTITY", "add_chain_arg", "read_model_reference"]

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


def refuse_existing(outputs: dict[Path, str], overwrite: bool) -> None:
    """ValueError if an output path exists and ``overwrite`` (--overwrite) is not given: the one overwrite rule of
    every command. ``outputs`` maps each output path to how the message names it."""
    if overwrite:
        return
    for path, named in outputs.items():
        if path.exists():
            raise ValueError(f"{named} already exists; pass --overwrite to replace it, or choose another name")


@contextmanager
def claimed(output: Path, covers: Iterable[Path], check: Callable[[], None]) -> Iterator[None]:
    """Run ``check`` (the command's output checks), claim ``output`` for the block (:func:`claim_output`: another
    run writing it is refused), then run ``check`` again: another run may have written there between the first
    check and the claim. Temporary files of ``output`` and ``covers`` left by a killed run are removed, with a
    note each."""
    check_unclaimed(output)  # an output in use is refused as such, not for the files the other run is writing
    check()
    with claim_output(output, covers) as stale:
        check()
        for tmp in stale:
            print(f"cryosampler: note: removed {tmp}, a temporary file left by a killed run", file=sys.stderr)
        yield


def add_overwrite_arg(parser: argparse.ArgumentParser, what: str) -> None:
    """--overwrite, alike in every command: existing outputs are refused unless it is given."""
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace {what} if it exists (default: refuse an existing output; inputs are never "
                             "overwritten)")


class Renamed(argparse.Action):
    """An option that also answers to deprecated spellings (``old``) until the next release: each one used prints
    one note on stderr that names the new spelling. Stores the value as argparse's "store" does, or ``const``
    for a switch (``nargs=0``). Added by :func:`add_renamed`."""

    def __init__(self, option_strings, dest, old=(), **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.old, self.noted = tuple(old), set()

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.old and option_string not in self.noted:
            self.noted.add(option_string)
            print(f"cryosampler: note: {option_string} is deprecated and will be removed in the next release; use "
                  f"{'/'.join(self.option_strings)}", file=sys.stderr)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_renamed(parser: argparse.ArgumentParser, *names: str, old: tuple[str, ...], switch: bool = False,
                **kwargs) -> argparse.Action:
    """``parser.add_argument(*names, **kwargs)`` that also takes the deprecated spellings ``old`` (each noted on
    stderr when used); ``switch``: a store_true option. ``-h``, usage and error messages show ``names``, and the
    help ends in "(deprecated: OLD)"."""
    if switch:
        kwargs.update(nargs=0, const=True, default=False)
    kwargs["help"] = f"{kwargs.get('help', '')} (deprecated: {', '.join(old)})".lstrip()
    action = parser.add_argument(*names, *old, action=Renamed, old=old, **kwargs)
    # The parser has entered every spelling in its own table just now; what it shows is option_strings.
    action.option_strings = list(names)
    return action


def add_device_arg(parser: argparse.ArgumentParser) -> None:
    """--device, alike in every command."""
    parser.add_argument("--device", default="auto",
                        help="where to compute: auto (a GPU when CUDA is available, else the CPU), cpu, cuda or "
                             "cuda:N (default auto)")


def add_quiet_arg(parser: argparse.ArgumentParser, progress: str) -> None:
    """--quiet, alike in every command: progress (``progress``: what this command prints of it) goes, what a user
    must read stays."""
    parser.add_argument("--quiet", action="store_true",
                        help=f"no progress output ({progress}); warnings, errors and the closing summary are still "
                             "printed")


def add_far_conformation_arg(parser: argparse.ArgumentParser) -> None:
    """--allow-far-conformation (formerly --skip-fit-probes), for the commands that ingest maps (train, fit)."""
    add_renamed(parser, "--allow-far-conformation", old=("--skip-fit-probes",), switch=True,
                help="accept a map although a rigid-body fit moves the reference by more than 3 Å RMS (a map of a "
                     "conformation far from the reference's, superposed on all atoms rather than on a rigid core, "
                     "can); the correlation floor of 0.1 still applies (default: refuse)")


def add_relax_arg(parser: argparse.ArgumentParser) -> None:
    """--relax, for the commands that write models (sample, fit)."""
    parser.add_argument("--relax", action="store_true",
                        help="relax each model before writing it, as AlphaFold does: Amber14 with implicit solvent, "
                             "hydrogens added, heavy atoms restrained to their positions, energy minimisation only; "
                             "needs OpenMM (pip install -e '.[relax]') and a model with every heavy atom")


def check_relax(reference, source) -> None:
    """Before any work, for --relax: ValueError unless Amber14 can parameterise ``reference`` (a Structure read
    from ``source``) and OpenMM is installed."""
    from cryosampler.physics.relax import check_relaxable, require_openmm

    check_relaxable(reference, str(source))
    require_openmm("--relax")


class Relaxation:
    """--relax: relaxes a command's models batch by batch (:func:`cryosampler.physics.relax.relax`) and sums up
    what it did in one line."""

    def __init__(self, reference):
        self.reference, self.before, self.after, self.rmsd, self.seconds = reference, [], [], [], []

    def __call__(self, coords):
        """Relaxed coords (M, N, 3) Å of models ``coords`` (M, N, 3) Å in the reference's atom order."""
        from cryosampler.evaluation.validate import clash_counts
        from cryosampler.physics.relax import relax

        relaxed, report = relax(coords, self.reference)
        self.before.append(clash_counts(coords, self.reference))
        self.after.append(clash_counts(relaxed, self.reference))
        self.rmsd.append(report.rmsd)
        self.seconds.append(report.seconds)
        return relaxed

    def summary(self, noun: str = "models") -> str:
        """One line: how many models, the time per model, clashes per model before → after, how far atoms moved."""
        import numpy as np

        from cryosampler.evaluation.validate import CLASH_CUTOFF

        before, after, rmsd, seconds = (np.concatenate(x) for x in (self.before, self.after, self.rmsd, self.seconds))
        one = noun.removesuffix("s")
        return (f"relaxed {len(rmsd)} {noun if len(rmsd) != 1 else one} (Amber14, implicit solvent, heavy atoms "
                f"restrained) in {seconds.mean():.1f} s per {one}: clashes < {CLASH_CUTOFF:g} Å per {one} "
                f"{before.mean():.1f} → {after.mean():.1f}, heavy atoms moved {np.sqrt(np.mean(rmsd ** 2)):.2f} Å "
                f"rms (largest model {rmsd.max():.2f} Å)")


def add_chain_arg(parser: argparse.ArgumentParser, default: str) -> None:
    """--chain, for every command that reads a reference; ``default`` says in words what it is without it."""
    parser.add_argument("--chain", default=None, help="chain(s) of the reference to use: an ID, several joined by "
                                                      f"commas (A,B), or all (default: {default})")


def read_model_reference(path, chain: str | None, state: dict, quiet: bool = False):
    """The reference Structure of a command that uses a trained model (``load_checkpoint``'s dict): ``chain`` as
    given. Without one: the chains a training protein was read with, when exactly one such set is in the file (a
    model of chain A of a complex takes chain A of it again); for a checkpoint that records no chains (written
    before they were recorded), the first protein chain, the default then; else every protein chain. A default
    that leaves protein chains out is said in one line on stderr unless ``quiet``."""
    from cryosampler.io.atomic_files import protein_chains, read_structure

    if chain is None:
        present = protein_chains(path)
        recorded = {p.get("chain") for p in state.get("proteins", [])} - {None}
        if not recorded:
            chain = present[0] if present else None  # no protein chain: read_structure says so
        else:
            fitting = {c for c in recorded if set(c.split(",")) <= set(present)}
            chain = fitting.pop() if len(fitting) == 1 else None
        if chain is not None and chain.split(",") != present and not quiet:
            print(f"cryosampler: note: {path}: reading chain(s) {chain} of its protein chains {', '.join(present)}, "
                  "as the model was trained (--chain to choose)", file=sys.stderr)
    return read_structure(path, chain=chain)


def nearest_training_protein(state: dict, sequence: str, source) -> tuple[str, float] | None:
    """(name, sequence identity) of the protein a checkpoint (``load_checkpoint``'s dict) was trained on that is
    nearest to ``sequence``, None for checkpoints that list none; warns on stderr, naming ``source``, below
    :data:`KNOWN_IDENTITY`."""
    from cryosampler.io.correspondence import nearest_protein

    nearest = nearest_protein(sequence, state.get("proteins", []))
    if nearest is not None and nearest[1] < KNOWN_IDENTITY:
        print(f"cryosampler: WARNING: {source} is {nearest[1]:.0%} identical in sequence to the nearest protein "
              f"this model was trained on ({nearest[0]}); it never saw maps of this protein, so read its output "
              "as a guess, not a prediction", file=sys.stderr)
    return nearest
