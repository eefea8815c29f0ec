"""Command line: ``cryosampler train|sample|fit|report|traverse …`` (one module each in :mod:`cryosampler.commands`).

Exit codes: 0 done; 1 failed while running (a write error, out of memory); 2 bad input or usage, found
before any work is done; 130 interrupted (Ctrl-C). A failed or interrupted ``sample``, ``report`` or ``traverse``
leaves no output: ensembles and maps are written under temporary names and moved into place only at the end. An
interrupted ``fit`` keeps the models of the maps it finished, and ``train`` what ``--resume`` needs: the
checkpoint (written at the end of the step when Ctrl-C or SIGTERM arrives), its log and ``config.json``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from cryosampler.commands import fit, report, sample, train, traverse

__all__ = ["main", "COMMANDS"]

COMMANDS = {"train": train, "sample": sample, "fit": fit, "report": report, "traverse": traverse}


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (argparse prints the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cryosampler",
        description="CryoSampler: generate atomic conformational ensembles with a model trained on cryo-EM maps.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.add_args(sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION))
    return parser


def _one_line_warnings(show):
    """warnings.showwarning that prints the package's own warnings as one line, as the commands print theirs,
    and leaves others' warnings to ``show``."""
    package = Path(__file__).resolve().parent

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if package in Path(filename).resolve().parents:
            print(f"cryosampler: WARNING: {message}", file=sys.stderr if file is None else file)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            COMMANDS[args.command].main(args)
    except KeyboardInterrupt as error:  # Ctrl-C; also SIGTERM during training, which saves the run first
        print(f"cryosampler: interrupted{f': {error}' if str(error) else ''}", file=sys.stderr)
        return 130
    except ValueError as error:
        print(f"cryosampler: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # Errors of an open file (disk full) carry no file name; the output is what is being written then.
        where = error.filename if error.filename is not None else args.output
        print(f"cryosampler: error: {where}: {error.strerror or _first_line(error)}", file=sys.stderr)
        return 1
    except (RuntimeError, MemoryError) as error:
        message = _first_line(error)
        if isinstance(error, MemoryError) or "memory" in message.lower():
            message += "; try a smaller --batch-size"
        print(f"cryosampler: error: {message}", file=sys.stderr)
        return 1
    return 0
