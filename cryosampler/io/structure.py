"""Protein structure I/O: the one module that talks to gemmi.

Everything else in CryoSampler sees a :class:`Structure` of numpy arrays. A structure holds the heavy
atoms of ONE protein chain, first conformer only, grouped contiguously by residue in file order.
Residues inside the chain are kept even when written as HETATM (modified residues such as M3L, caps
such as ACE); waters, ions and ligands outside the chain are dropped.

Coordinates are in Å throughout.
"""

from __future__ import annotations

import dataclasses
import gzip
import re
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np
from scipy.spatial import cKDTree

from cryosampler.io.files import atomic_path

__all__ = [
    "CAP_RESIDUES",
    "AtomMatchReport",
    "EnsembleWriter",
    "Structure",
    "match_atoms",
    "shared_ca",
    "read_ensemble",
    "read_structure",
    "write_mmcif",
    "write_pdb",
]

# Terminal caps: residues without CA that may sit inside a protein chain.
CAP_RESIDUES = frozenset({"ACE", "NH2", "NME", "FOR"})

# Backbone atoms every amino-acid residue must have; the structural losses index them.
BACKBONE_ATOMS = ("N", "CA", "C", "O")

_PDB_SUFFIXES = (".pdb", ".ent")
_CIF_SUFFIXES = (".cif", ".mmcif")

# Bonded heavy atoms are at least 1.2 Å apart; atoms closer than this are placeholders (e.g. all at 0, 0, 0)
# or collapsed coordinates, never a real structure.
MIN_ATOM_DISTANCE = 0.1  # Å

# Without --chain, a first protein chain shorter than this is taken for a bound peptide when a longer
# protein chain follows it, and the choice is left to the user.
MIN_DEFAULT_CHAIN_RESIDUES = 30

# A PDB coordinate field (8 columns): a plain decimal number. gemmi reads junk such as "abc.de" as 0.0.
_PDB_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
_PDB_COORD_COLUMNS = (("x", 30, 38), ("y", 38, 46), ("z", 46, 54))


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _residue_layout(
    res_nums: np.ndarray, res_names: np.ndarray, atom_names: np.ndarray, source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group atoms into residues and locate the backbone.

    Parameters
    ----------
    res_nums : (N,) int64
    res_names, atom_names : (N,) str
    source : str
        Name used in error messages (structure name or file path).

    Returns
    -------
    residue_starts : (L+1,) int64
        Atoms of residue ``r`` are ``residue_starts[r]:residue_starts[r+1]``.
    backbone_index : (L_aa, 4) int64
        Atom indices of N, CA, C, O of every amino-acid residue (caps excluded).
    backbone_res_nums : (L_aa,) int64
    """
    n = len(res_nums)
    # A new residue starts wherever the residue number changes.
    breaks = np.flatnonzero(res_nums[1:] != res_nums[:-1]) + 1
    residue_starts = np.concatenate([[0], breaks, [n]]).astype(np.int64)
    starts = residue_starts[:-1]
    if len(np.unique(res_nums[starts])) != len(starts):
        nums, counts = np.unique(res_nums[starts], return_counts=True)
        raise ValueError(
            f"{source}: residue number {int(nums[counts > 1][0])} occurs in two separate places of the "
            "chain (insertion codes or unsorted atoms); renumber the residues uniquely"
        )

    backbone, backbone_nums = [], []
    for start, stop in zip(residue_starts[:-1], residue_starts[1:]):
        names = list(atom_names[start:stop])
        res_label = f"residue {res_names[start]} {int(res_nums[start])}"
        if len(set(res_names[start:stop])) != 1:
            mixed = ", ".join(sorted({str(r) for r in res_names[start:stop]}))
            raise ValueError(f"{source}: {res_label} mixes residue names {mixed}; renumber the residues uniquely")
        if len(set(names)) != len(names):
            twice = ", ".join(sorted({str(a) for a in names if names.count(a) > 1}))
            raise ValueError(f"{source}: {res_label} has atom name(s) {twice} more than once; "
                             "remove the extra copies")
        if "CA" not in names:
            if res_names[start] in CAP_RESIDUES:
                continue
            raise ValueError(
                f"{source}: {res_label} has no CA atom and is not a known cap {sorted(CAP_RESIDUES)}; "
                "remove the residue or complete its backbone"
            )
        missing = [a for a in BACKBONE_ATOMS if a not in names]
        if missing:
            raise ValueError(
                f"{source}: {res_label} is missing backbone atom(s) {', '.join(missing)}; "
                "every amino-acid residue needs N, CA, C, O"
            )
        backbone.append([start + names.index(a) for a in BACKBONE_ATOMS])
        backbone_nums.append(res_nums[start])
    if not backbone:
        raise ValueError(f"{source}: no amino-acid residue (with N, CA, C, O) in the chain")
    return (
        residue_starts,
        np.asarray(backbone, dtype=np.int64).reshape(-1, 4),
        np.asarray(backbone_nums, dtype=np.int64),
    )


def _validate_coords(coords, n_atoms: int, what: str, allow_models: bool) -> np.ndarray:
    coords = np.asarray(coords, dtype=np.float64)
    shapes = "(N, 3) or (M, N, 3)" if allow_models else "(N, 3)"
    ok = coords.shape[-2:] == (n_atoms, 3) and (coords.ndim == 2 or (allow_models and coords.ndim == 3))
    if not ok:
        raise ValueError(f"{what}: coords must have shape {shapes} with N={n_atoms}, got {coords.shape}")
    if not np.all(np.isfinite(coords)):
        raise ValueError(f"{what}: coords contain NaN or inf")
    return coords


# eq=False: field-wise == on numpy arrays is ambiguous; compare arrays explicitly instead.
@dataclass(frozen=True, eq=False)
class Structure:
    """Heavy atoms of one protein chain, first conformer, grouped by residue in file order.

    Attributes
    ----------
    coords : (N, 3) float64, Å
    elements : (N,) str
        Element symbols in gemmi's spelling (``"C"``, ``"N"``, ``"Se"``).
    atomic_numbers : (N,) int64
    atom_names, res_names : (N,) str
    res_nums : (N,) int64
        Author residue numbers; unique per residue.
    chain_id : str
    name : str
        Label of the source (file stem for structures read from disk).
    residue_starts : (L+1,) int64, derived
        Atom range of residue ``r`` is ``residue_starts[r]:residue_starts[r+1]``; L counts caps too.
    backbone_index : (L_aa, 4) int64, derived
        Atom indices of N, CA, C, O of every amino-acid residue (caps excluded), in chain order.
    backbone_res_nums : (L_aa,) int64, derived
        Residue number of each row of ``backbone_index``.

    Arrays are read-only; use :meth:`with_coords` or :meth:`translated` for moved copies.
    """

    coords: np.ndarray
    elements: np.ndarray
    atomic_numbers: np.ndarray
    atom_names: np.ndarray
    res_names: np.ndarray
    res_nums: np.ndarray
    chain_id: str
    name: str
    residue_starts: np.ndarray = field(init=False, repr=False, compare=False)
    backbone_index: np.ndarray = field(init=False, repr=False, compare=False)
    backbone_res_nums: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        set_ = object.__setattr__  # frozen dataclass: normalise fields once, here
        n = len(np.asarray(self.res_nums))
        if n == 0:
            raise ValueError(f"{self.name}: structure has no atoms")
        set_(self, "coords", _readonly(_validate_coords(self.coords, n, self.name, allow_models=False).copy()))
        for name, dtype in [
            ("elements", str),
            ("atom_names", str),
            ("res_names", str),
            ("atomic_numbers", np.int64),
            ("res_nums", np.int64),
        ]:
            array = np.array(getattr(self, name), dtype=dtype)
            if array.shape != (n,):
                raise ValueError(f"{self.name}: {name} must have shape ({n},), got {array.shape}")
            set_(self, name, _readonly(array))
        layout = _residue_layout(self.res_nums, self.res_names, self.atom_names, self.name)
        for name, array in zip(["residue_starts", "backbone_index", "backbone_res_nums"], layout):
            set_(self, name, _readonly(array))

    @property
    def n_atoms(self) -> int:
        """Number of atoms N."""
        return len(self.res_nums)

    @property
    def n_residues(self) -> int:
        """Number of residues L, caps included."""
        return len(self.residue_starts) - 1

    @property
    def sequence(self) -> str:
        """One-letter sequence of the amino-acid residues (caps excluded, length L_aa).

        Modified residues map to their parent (M3L -> K); residues gemmi does not know map to X.
        """
        letters = []
        for i in self.backbone_index[:, 1]:
            info = gemmi.find_tabulated_residue(self.res_names[i])
            code = info.one_letter_code.upper() if info is not None else " "
            letters.append(code if code.strip() else "X")
        return "".join(letters)

    def with_coords(self, new_coords) -> Structure:
        """Copy with coordinates replaced; ``new_coords`` is (N, 3) in Å."""
        coords = _validate_coords(new_coords, self.n_atoms, self.name, allow_models=False)
        return dataclasses.replace(self, coords=coords)

    def translated(self, shift) -> Structure:
        """Copy rigidly moved by ``shift`` (3,) in Å."""
        shift = np.asarray(shift, dtype=np.float64)
        if shift.shape != (3,):
            raise ValueError(f"{self.name}: shift must have shape (3,), got {shift.shape}")
        return self.with_coords(self.coords + shift)


def _entry_name(path: Path) -> str:
    name = path.name
    if name.endswith(".gz"):
        name = name[:-3]
    return name.rsplit(".", 1)[0]


def _pdb_record_lines(path: Path) -> dict[tuple[int, int], list[int]]:
    """Check the coordinate fields of a PDB file's ATOM/HETATM records and return their line numbers.

    Returns 1-based line numbers keyed by (MODEL number, atom serial), to name atoms in messages. Raises
    ValueError naming the line of a coordinate field that is not a number (gemmi would read it as 0.0).
    """
    opener = gzip.open if path.suffix == ".gz" else open
    lines: dict[tuple[int, int], list[int]] = {}
    model = 1
    with opener(path, "rt", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if line.startswith("MODEL") and line[10:14].strip().isdigit():
                model = int(line[10:14])
            if not line.startswith(("ATOM  ", "HETATM")):
                continue
            # gemmi has already refused records too short to hold all three fields.
            for axis, begin, end in _PDB_COORD_COLUMNS:
                if not _PDB_NUMBER.fullmatch(line[begin:end]):
                    raise ValueError(
                        f"{path} line {number}: {axis} coordinate {line[begin:end].strip()!r} (columns "
                        f"{begin + 1}-{end}) is not a number; fix or remove the record")
            if line[6:11].strip().isdigit():
                lines.setdefault((model, int(line[6:11])), []).append(number)
    return lines


def _check_duplicate_atoms(st: gemmi.Structure, path: Path, lines: dict[tuple[int, int], list[int]]) -> None:
    """Refuse two atoms of one polymer residue with the same name and altloc (gemmi would drop one).

    ``lines``: line numbers by (model, serial) from :func:`_pdb_record_lines`; empty for mmCIF, whose
    atoms are named by their ``_atom_site.id`` instead.
    """
    for model in st:
        for chain in model:
            for res in chain.get_polymer():
                seen: dict[tuple[str, str], int] = {}
                for atom in res:
                    key = (atom.name, atom.altloc)
                    if key not in seen:
                        seen[key] = atom.serial
                        continue
                    first = seen[key]
                    found = sorted(set(lines.get((model.num, first), []) + lines.get((model.num, atom.serial), [])))
                    ids = "serials" if lines else "_atom_site.id"
                    where = (f"{path} lines {found[0]} and {found[1]}" if len(found) == 2
                             else f"{path} ({ids} {first} and {atom.serial})")
                    raise ValueError(
                        f"{where}: chain {chain.name} residue {res.name} {res.seqid.num} has atom {atom.name} "
                        "twice; remove one copy (or mark the copies as alternative conformations A, B)")


def _read_gemmi(path) -> tuple[gemmi.Structure, Path]:
    """Parse a PDB/mmCIF file (optionally .gz) into a gemmi structure ready for chain extraction."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"structure file not found: {path}")
    suffix = path.suffixes[-2] if path.suffix == ".gz" and len(path.suffixes) > 1 else path.suffix
    if suffix.lower() not in _PDB_SUFFIXES + _CIF_SUFFIXES:
        raise ValueError(
            f"{path}: unknown structure format {suffix!r}; expected one of "
            f"{', '.join(_PDB_SUFFIXES + _CIF_SUFFIXES)} (optionally .gz)"
        )
    try:
        st = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError, OSError) as err:
        # gemmi quotes the offending line after a newline; keep the message on one line.
        raise ValueError(f"{path}: cannot parse structure file ({' '.join(str(err).split())})") from None
    # gemmi skips PDB lines it does not know, so a file of garbage parses as an empty structure.
    if len(st) == 0 or st[0].count_atom_sites() == 0:
        raise ValueError(f"{path}: cannot parse structure file (no atoms could be read; is it PDB or mmCIF?)")
    lines = _pdb_record_lines(path) if suffix.lower() in _PDB_SUFFIXES else {}
    # Subchains split each chain into polymer / ligands / waters, even without SEQRES or TER records.
    st.setup_entities()
    st.remove_hydrogens()
    _check_duplicate_atoms(st, path, lines)
    # Keep the first conformer of each atom (blank + first altloc, e.g. 'A').
    st.remove_alternative_conformations()
    return st, path


def _is_protein(span) -> bool:
    for res in span:
        info = gemmi.find_tabulated_residue(res.name)
        if info is not None and info.is_amino_acid():
            return True
    return False


def _chain_arrays(model: gemmi.Model, chain: str | None, source: str) -> dict:
    """Atom arrays of the polymer part of one chain of a gemmi model."""
    proteins = {}  # chain name -> (chain, polymer), first occurrence, in file order
    for ch in model:
        polymer = ch.get_polymer()
        if ch.name not in proteins and len(polymer) and _is_protein(polymer):
            proteins[ch.name] = (ch, polymer)
    listing = ", ".join(f"{name} ({len(polymer)} residues)" for name, (_, polymer) in proteins.items())
    if chain is None:
        if not proteins:
            raise ValueError(f"{source}: no protein chain found (only waters, ions or ligands?)")
        ch, polymer = next(iter(proteins.values()))
        if len(polymer) < MIN_DEFAULT_CHAIN_RESIDUES and any(
                len(p) >= MIN_DEFAULT_CHAIN_RESIDUES for _, p in proteins.values()):
            raise ValueError(
                f"{source}: the first protein chain, {ch.name}, has only {len(polymer)} residues (a bound "
                f"peptide?); protein chains here: {listing}; choose one with --chain (chain= in Python)")
    elif chain in proteins:
        ch, polymer = proteins[chain]
    else:
        raise ValueError(f"{source}: no protein chain {chain!r}; protein chains here: {listing or 'none'}")

    rows = []
    for res in polymer:
        label = f"chain {ch.name} residue {res.name} {res.seqid.num}"
        if res.seqid.icode != " ":
            raise ValueError(f"{source}: {label}{res.seqid.icode} (insertion code) is not supported; renumber "
                             "the residues or remove it")
        for atom in res:
            if atom.element.atomic_number == 0:
                raise ValueError(
                    f"{source}: {label} atom {atom.name}: unknown element; fix the element column (77-78) of "
                    "the file"
                )
            if not all(np.isfinite(atom.pos.tolist())):
                raise ValueError(f"{source}: {label} atom {atom.name}: coordinate is not a number; fix the "
                                 "coordinates")
            element = atom.element
            rows.append((atom.pos.tolist(), element.name, element.atomic_number, atom.name, res.name, res.seqid.num))
    coords, elements, numbers, atom_names, res_names, res_nums = zip(*rows)
    return dict(
        coords=np.array(coords, dtype=np.float64),
        elements=np.array(elements),
        atomic_numbers=np.array(numbers, dtype=np.int64),
        atom_names=np.array(atom_names),
        res_names=np.array(res_names),
        res_nums=np.array(res_nums, dtype=np.int64),
        chain_id=ch.name,
    )


def _check_distinct_positions(arrays: dict, source: str) -> None:
    """Refuse atoms closer than MIN_ATOM_DISTANCE to another atom (collapsed or placeholder coordinates)."""
    coords = arrays["coords"]  # (N, 3), Å
    n = len(coords)
    if n < 2:
        return
    spread = np.linalg.norm(coords - coords.mean(axis=0), axis=1).max()
    if spread < MIN_ATOM_DISTANCE:
        x, y, z = coords[0]
        raise ValueError(f"{source}: all {n} atoms lie at one point ({x:.3f}, {y:.3f}, {z:.3f}) (collapsed "
                         "coordinates); supply a file with real coordinates")
    # Nearest other atom of each atom: O(N log N) time and O(N) memory even when many atoms coincide.
    distance, nearest = cKDTree(coords).query(coords, k=2)
    close = np.flatnonzero(distance[:, 1] < MIN_ATOM_DISTANCE)
    if len(close):
        i = int(close[0])
        # With coincident atoms the query may list the atom itself second.
        j = int(nearest[i, 1] if nearest[i, 1] != i else nearest[i, 0])
        i, j = min(i, j), max(i, j)

        def label(k: int) -> str:
            return f"{arrays['res_names'][k]} {arrays['res_nums'][k]} {arrays['atom_names'][k]}"

        x, y, z = coords[i]
        raise ValueError(
            f"{source}: {len(close)} of {n} atoms lie within {MIN_ATOM_DISTANCE} Å of another atom, e.g. "
            f"{label(i)} and {label(j)} at ({x:.3f}, {y:.3f}, {z:.3f}) (placeholder or collapsed coordinates); "
            "fix or remove those atoms")


def read_structure(path, chain: str | None = None) -> Structure:
    """Read the protein heavy atoms of one chain from a PDB or mmCIF file (first model).

    Parameters
    ----------
    path : str or Path
        ``.pdb``/``.ent`` or ``.cif``/``.mmcif`` file, optionally gzipped.
    chain : str, optional
        Author chain ID. Default: the first chain holding amino-acid residues, unless it has fewer than
        ``MIN_DEFAULT_CHAIN_RESIDUES`` (30) residues and a longer protein chain follows (a bound peptide
        listed first): then the chain must be named.

    Returns
    -------
    Structure
        First conformer of every atom; hydrogens, waters, ions and ligands outside the chain dropped;
        caps (ACE, NH2, NME, FOR) and modified residues inside the chain kept.

    Raises
    ------
    ValueError
        The message names the file (and line, residue or atom) and what to do, for: a missing or
        unparsable file; a PDB coordinate field that is not a number (line named); two atoms of one
        residue with the same name and altloc (lines named; never silently dropped); no protein chain,
        or an ambiguous default chain (the protein chains are listed with their lengths); an insertion
        code (not supported); a non-cap residue without CA or an amino-acid residue without N, CA, C or
        O; an unknown element; atoms closer than ``MIN_ATOM_DISTANCE`` (0.1 Å) to another atom, or all
        atoms at one point (collapsed coordinates).
    """
    st, path = _read_gemmi(path)
    arrays = _chain_arrays(st[0], chain, str(path))
    # Validate here first so errors name the file, not just the structure name.
    source = f"{path}: chain {arrays['chain_id']}"
    _residue_layout(arrays["res_nums"], arrays["res_names"], arrays["atom_names"], source)
    _check_distinct_positions(arrays, source)
    return Structure(name=_entry_name(path), **arrays)


def read_ensemble(path, reference: Structure) -> np.ndarray:
    """Read every model of a (multi-MODEL) file whose atoms match ``reference``.

    Returns
    -------
    coords : (M, N, 3) float64, Å
        Model ``m`` in the atom order of ``reference``.

    Raises
    ------
    ValueError
        If any model's atoms (residue numbers, residue names, atom names, in order) differ from
        ``reference``; the message names the model and the first differing atom.
    """
    st, path = _read_gemmi(path)
    ensemble = []
    for model in st:
        source = f"{path} model {model.num}"
        arrays = _chain_arrays(model, reference.chain_id, source)
        for key in ("res_nums", "res_names", "atom_names"):
            got, want = arrays[key], getattr(reference, key)
            if got.shape != want.shape or np.any(got != want):
                if got.shape != want.shape:
                    detail = f"{len(got)} atoms, reference {reference.name} has {len(want)}"
                else:
                    i = int(np.flatnonzero(got != want)[0])
                    detail = (f"atom {i} is {arrays['res_names'][i]} {arrays['res_nums'][i]} "
                              f"{arrays['atom_names'][i]}, reference has {reference.res_names[i]} "
                              f"{reference.res_nums[i]} {reference.atom_names[i]}")
                raise ValueError(f"{source}: atoms do not match the reference ({detail})")
        ensemble.append(arrays["coords"])
    return np.stack(ensemble)


def _to_gemmi(structure: Structure, coords: np.ndarray, first_model: int = 1) -> gemmi.Structure:
    """Build a gemmi structure with one model per row of ``coords`` (M, N, 3), numbered from ``first_model``."""
    st = gemmi.Structure()
    st.name = structure.name
    starts = structure.residue_starts
    for m, xyz in enumerate(coords):
        model = gemmi.Model(first_model + m)
        chain = gemmi.Chain(structure.chain_id)
        for start, stop in zip(starts[:-1], starts[1:]):
            res = gemmi.Residue()
            res.name = str(structure.res_names[start])
            res.seqid = gemmi.SeqId(int(structure.res_nums[start]), " ")
            info = gemmi.find_tabulated_residue(res.name)
            # Non-standard residues (caps, M3L) stay HETATM inside the chain, as deposited.
            res.het_flag = "A" if info is not None and info.is_standard() else "H"
            for i in range(start, stop):
                atom = gemmi.Atom()
                atom.name = str(structure.atom_names[i])
                atom.element = gemmi.Element(str(structure.elements[i]))
                atom.pos = gemmi.Position(*xyz[i])
                atom.occ = 1.0
                atom.b_iso = 0.0
                res.add_atom(atom)
            chain.add_residue(res)
        model.add_chain(chain)
        st.add_model(model)
    st.setup_entities()
    return st


def _models(structure: Structure, coords, path) -> np.ndarray:
    coords = structure.coords if coords is None else coords
    coords = _validate_coords(coords, structure.n_atoms, str(path), allow_models=True)
    return coords[None] if coords.ndim == 2 else coords


# No CRYST1 record or _cell/_symmetry categories: a placeholder 1 Å unit cell would make viewers apply
# crystal symmetry to a model. No END either: EnsembleWriter appends models and ends the file itself.
_PDB_OPTIONS = gemmi.PdbWriteOptions(cryst1_record=False, end_record=False)
_MMCIF_GROUPS = gemmi.MmcifOutputGroups(True, cell=False, symmetry=False)


def _pdb_line(record: str) -> str:
    return record.ljust(80) + "\n"


class EnsembleWriter:
    """Write models of ``structure`` to a PDB (.pdb/.ent) or mmCIF (.cif/.mmcif) file batch by batch.

    Only the batch being written is held in memory. The file is written under a temporary name beside
    ``path`` and renamed onto it when the ``with`` block ends without error; on error (Ctrl-C included)
    the temporary file is removed and an existing file at ``path`` is left untouched::

        with EnsembleWriter(path, reference) as out:
            for coords in batches:  # (M, N, 3) Å
                out.write(coords)

    fmt : "pdb", "mmcif" or None
        File format; default from the suffix of ``path``.
    multi_model : bool
        PDB only: wrap every model in MODEL/ENDMDL records (an ensemble, even of one model). False writes a
        single structure without them and refuses a second model.
    """

    def __init__(self, path, structure: Structure, fmt: str | None = None, multi_model: bool = True):
        self.path, self.structure, self.multi_model = Path(path), structure, multi_model
        if fmt is None:
            suffix = self.path.suffix.lower()
            if suffix not in _PDB_SUFFIXES + _CIF_SUFFIXES:
                raise ValueError(f"{self.path}: cannot write format {suffix!r}; use one of "
                                 f"{', '.join(_PDB_SUFFIXES + _CIF_SUFFIXES)}")
            fmt = "pdb" if suffix in _PDB_SUFFIXES else "mmcif"
        assert fmt in ("pdb", "mmcif"), fmt
        self.is_pdb = fmt == "pdb"
        self.n_models = 0

    def __enter__(self) -> EnsembleWriter:
        with ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path))
            self._file = stack.enter_context(open(tmp, "w"))
            self._stack = stack.pop_all()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None and self.is_pdb:
            self._file.write(_pdb_line("END"))
        return self._stack.__exit__(exc_type, exc, tb)

    def write(self, coords) -> None:
        """Append models: coords (M, N, 3) or (N, 3) float, Å, in ``structure``'s atom order."""
        coords = _models(self.structure, coords, self.path)
        if self.is_pdb:
            text = self._pdb_text(coords)
        else:
            text = self._mmcif_text(coords)
        self._file.write(text)
        self._file.flush()  # the temporary file shows progress; the batch's text is freed
        self.n_models += len(coords)

    def _pdb_text(self, coords: np.ndarray) -> str:
        if not self.multi_model:
            if self.n_models + len(coords) > 1:
                raise ValueError(f"{self.path}: a single-structure PDB file takes one model")
            return _to_gemmi(self.structure, coords).make_pdb_string(_PDB_OPTIONS)
        # gemmi writes MODEL records only for files of several models, so each model is wrapped here.
        parts = []
        for m, xyz in enumerate(coords, start=self.n_models + 1):
            atoms = _to_gemmi(self.structure, xyz[None]).make_pdb_string(_PDB_OPTIONS)
            parts += [_pdb_line(f"MODEL     {m:4d}"), atoms, _pdb_line("ENDMDL")]
        return "".join(parts)

    def _mmcif_text(self, coords: np.ndarray) -> str:
        doc = _to_gemmi(self.structure, coords, first_model=self.n_models + 1).make_mmcif_document(_MMCIF_GROUPS)
        # _atom_site.id runs on across batches: gemmi numbers each document from 1.
        ids = doc.sole_block().find_values("_atom_site.id")
        first_id = self.n_models * self.structure.n_atoms + 1
        for i in range(len(ids)):
            ids[i] = str(first_id + i)
        text = doc.as_string()
        if self.n_models == 0:
            return text
        # Later batches add rows to the _atom_site loop, which gemmi writes last.
        lines = text.splitlines(keepends=True)
        last_tag = max(i for i, line in enumerate(lines) if line.startswith("_atom_site."))
        rows = lines[last_tag + 1:]
        assert not any(line.startswith(("_", "loop_", "data_")) for line in rows), "_atom_site is not last"
        return "".join(rows)


def write_pdb(path, structure: Structure, coords=None) -> None:
    """Write ``structure`` to a PDB file, one MODEL per conformation.

    Parameters
    ----------
    coords : (N, 3) or (M, N, 3) float, Å, optional
        Replacement coordinates; (M, N, 3) writes an M-model ensemble (M > 1 with MODEL records).
        Default: ``structure.coords``. Use :class:`EnsembleWriter` to write an ensemble batch by batch.
    """
    coords = _models(structure, coords, path)
    with EnsembleWriter(path, structure, "pdb", multi_model=len(coords) > 1) as out:
        out.write(coords)


def write_mmcif(path, structure: Structure, coords=None) -> None:
    """Write ``structure`` to an mmCIF file without a unit cell; ``coords`` as in :func:`write_pdb`."""
    with EnsembleWriter(path, structure, "mmcif") as out:
        out.write(_models(structure, coords, path))


def shared_ca(a: Structure, b_res_nums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CA atoms of ``a`` whose residue numbers are in ``b_res_nums`` (L_b,), in increasing residue number.

    Returns (atom indices into ``a`` (K,), row indices into ``b_res_nums`` (K,)); pass
    ``b.backbone_res_nums`` and index ``b.backbone_index[rows, 1]`` for the other structure's CA atoms.
    """
    _, rows_a, rows_b = np.intersect1d(a.backbone_res_nums, b_res_nums, return_indices=True)
    return a.backbone_index[rows_a, 1], rows_b


@dataclass(frozen=True)
class AtomMatchReport:
    """What :func:`match_atoms` kept and dropped; examples read ``"ASP118:CG"``."""

    n_matched: int
    n_only_a: int
    n_only_b: int
    examples_only_a: tuple[str, ...]
    examples_only_b: tuple[str, ...]
    # Matched atoms whose residue names differ (sequence variants, e.g. human vs Paramecium CaM).
    n_res_name_mismatch: int

    def __str__(self) -> str:
        return (
            f"matched {self.n_matched} atoms; dropped {self.n_only_a} only in a "
            f"{list(self.examples_only_a)}, {self.n_only_b} only in b {list(self.examples_only_b)}; "
            f"{self.n_res_name_mismatch} matched atoms differ in residue name"
        )


def match_atoms(
    a: Structure, b: Structure, n_examples: int = 5
) -> tuple[np.ndarray, np.ndarray, AtomMatchReport]:
    """Match atoms of two structures by (residue number, atom name); chain IDs are ignored.

    Returns
    -------
    idx_a, idx_b : (K,) int64
        ``a.coords[idx_a]`` and ``b.coords[idx_b]`` are the same atoms, in the atom order of ``a``.
    report : AtomMatchReport
        Counts and up to ``n_examples`` examples of atoms dropped from each side.
    """
    keys_b = {(int(r), n): i for i, (r, n) in enumerate(zip(b.res_nums, b.atom_names))}
    idx_a, idx_b, only_a = [], [], []
    for i, (r, n) in enumerate(zip(a.res_nums, a.atom_names)):
        j = keys_b.pop((int(r), n), None)
        if j is None:
            only_a.append(i)
        else:
            idx_a.append(i)
            idx_b.append(j)
    only_b = sorted(keys_b.values())
    idx_a = np.asarray(idx_a, dtype=np.int64)
    idx_b = np.asarray(idx_b, dtype=np.int64)

    def label(s: Structure, i: int) -> str:
        return f"{s.res_names[i]}{s.res_nums[i]}:{s.atom_names[i]}"

    report = AtomMatchReport(
        n_matched=len(idx_a),
        n_only_a=len(only_a),
        n_only_b=len(only_b),
        examples_only_a=tuple(label(a, i) for i in only_a[:n_examples]),
        examples_only_b=tuple(label(b, i) for i in only_b[:n_examples]),
        n_res_name_mismatch=int(np.sum(a.res_names[idx_a] != b.res_names[idx_b])),
    )
    return idx_a, idx_b, report
