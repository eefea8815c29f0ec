"""What ``--maps`` (train and fit) names: map files, folders of maps, or a CSV listing maps with their
proteins and references. Resolved and checked before anything is read or written."""

from __future__ import annotations

from pathlib import Path

from cryosampler.commands import same_path

__all__ = ["MAP_SUFFIXES", "is_map", "resolve_maps", "resolve_proteins", "map_weights"]

MAP_SUFFIXES = (".mrc", ".map", ".ccp4", ".mrc.gz", ".map.gz", ".ccp4.gz")



def is_map(path: Path) -> bool:
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
            found = sorted(p for p in path.iterdir() if p.is_file() and is_map(p))
            if not found:
                raise ValueError(f"--maps {path}: the folder holds no map ({', '.join(MAP_SUFFIXES)})")
            maps += found
        elif path.suffix.lower() == ".csv":
            maps += _maps_from_csv(path, reference)
        elif is_map(path):
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


def map_weights(given: list[Path], maps: list[Path]) -> list[float] | None:
    """Each of ``maps``' weight from the 'weight' column of the CSV listings among ``given`` (e.g. a cryoDRGN
    k-means class's particle count), in the order of ``maps``; None when no listing has that column.

    ValueError naming the CSV for a weight that is not a finite number ≥ 0, a map listed twice with two weights,
    weights that are all 0, or a map given without a weight while others have one.
    """
    import math

    weights: dict[Path, float] = {}
    for path in given:
        if path.suffix.lower() != ".csv" or not path.is_file():
            continue
        table = _read_listing(path)
        if "weight" not in table.columns:
            continue
        for name, text in zip(table["map"], table["weight"]):
            if not isinstance(name, str):
                continue
            try:
                value = float(text)
            except (TypeError, ValueError):
                value = math.nan
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"--maps {path}: weight {text!r} of map {name} is not a number ≥ 0; give every map "
                                 "a weight, such as its class's particle count")
            key = (path.parent / name).resolve()
            if weights.setdefault(key, value) != value:
                raise ValueError(f"--maps {path}: map {name} is listed with two weights")
    if not weights:
        return None
    missing = [m for m in maps if m.resolve() not in weights]
    if missing:
        raise ValueError(f"--maps: {missing[0]} has no weight, but other maps have one in a CSV's 'weight' column; "
                         "list every map with its weight")
    values = [weights[m.resolve()] for m in maps]
    if not sum(values) > 0:
        raise ValueError("--maps: every map's weight is 0; give the maps weights (such as particle counts) that are "
                         "not all 0")
    return values
