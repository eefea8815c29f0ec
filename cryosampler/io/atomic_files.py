"""PDB and mmCIF files: reading and writing :class:`~cryosampler.io.structure.Structure` models and ensembles. The
one module that talks to gemmi, so it also holds what else CryoSampler takes from gemmi: its residue table
(one-letter codes, atomic numbers) and its global sequence alignment.

Coordinates are in Å throughout.
"""

from __future__ import annotations

import gzip
import re
import warnings
from contextlib import ExitStack
from pathlib import Path

import gemmi
import numpy as np
from scipy.spatial import cKDTree

from cryosampler.io.files import atomic_path
from cryosampler.io.structure import Structure, check_same_atoms, residue_layout, validate_coords

__all__ = ["EnsembleWriter", "read_ensemble", "read_structure", "protein_chains", "write_mmcif", "write_pdb",
           "MIN_ATOM_DISTANCE", "one_letter_code", "atomic_number", "align_sequences"]

_PDB_SUFFIXES = (".pdb", ".ent")


_CIF_SUFFIXES = (".cif", ".mmcif")


# Bonded heavy atoms are at least 1.2 Å apart; atoms closer than this are placeholders (e.g. all at 0, 0, 0)
# or collapsed coordinates, never a real structure.
MIN_ATOM_DISTANCE = 0.1  # Å


# A PDB coordinate field (8 columns): a plain decimal number. gemmi reads junk such as "abc.de" as 0.0.
_PDB_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


_PDB_COORD_COLUMNS = (("x", 30, 38), ("y", 38, 46), ("z", 46, 54))


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


def _chain_names(proteins: dict, chain: str | None, source: str) -> list[str]:
    """The chains ``chain`` asks for, in file order: None or "all", every protein chain; else one ID or several
    joined by commas ("A,B")."""
    listing = ", ".join(f"{name} ({len(polymer)} residues)" for name, (_, polymer) in proteins.items())
    if not proteins:
        raise ValueError(f"{source}: no protein chain found (only waters, ions or ligands?)")
    if chain is None or chain.strip().lower() == "all":
        return list(proteins)
    asked = [c.strip() for c in chain.split(",")]
    if "" in asked or len(set(asked)) != len(asked):
        raise ValueError(f"{source}: --chain {chain!r}: give chain IDs once each, joined by commas (A,B), or all")
    missing = [c for c in asked if c not in proteins]
    if missing:
        raise ValueError(f"{source}: no protein chain {missing[0]!r}; protein chains here: {listing}")
    return [name for name in proteins if name in asked]


def _left_out(model: gemmi.Model, names: list[str]) -> str | None:
    """What a reader of chains ``names`` leaves out that the user did not exclude by naming chains: the ligands, ions
    and waters of those chains and of chains without protein, and nucleic-acid chains. One phrase, or None."""
    proteins = _proteins(model)
    residues, waters = {}, 0
    for ch in model:
        if ch.name in proteins and ch.name not in names:
            continue  # a protein chain the user left out with --chain
        kept = ({(r.seqid.num, r.seqid.icode) for r in proteins[ch.name][1]}
                if ch.name in names and proteins[ch.name][0] is ch else set())
        for res in ch:
            if (res.seqid.num, res.seqid.icode) in kept:
                continue
            if res.is_water():
                waters += 1
            else:
                residues[res.name] = residues.get(res.name, 0) + 1
    if not residues and not waters:
        return None
    named = ", ".join(f"{name} ×{count}" if count > 1 else name for name, count in residues.items())
    parts = ([f"{sum(residues.values())} non-protein residue(s) ({named})"] if residues else []) + (
        [f"{waters} water(s)"] if waters else [])
    return " and ".join(parts)


def _proteins(model: gemmi.Model) -> dict:
    """The protein chains of a gemmi model: chain name → (chain, its polymer), first occurrence, in file order."""
    proteins = {}
    for ch in model:
        polymer = ch.get_polymer()
        if ch.name not in proteins and len(polymer) and _is_protein(polymer):
            proteins[ch.name] = (ch, polymer)
    return proteins


def _internal_number(previous: int | None, previous_author: int | None, author: int) -> int:
    """A residue's number in ``Structure.res_nums`` from the previous residue's of its chain (None for the first):
    the author numbers' step where they go up, so gaps stay gaps; one more for the same author number (insertion
    codes: 52, 52A, 52B, or 1B, 1A, 1); two more where they go back, a break as any other."""
    if previous is None:
        return author
    step = author - previous_author
    return previous + (step if step > 0 else 1 if step == 0 else 2)


def _chain_arrays(model: gemmi.Model, chain: str | None, source: str) -> dict:
    """Atom arrays of the polymer part of the chain(s) ``chain`` asks for (:func:`_chain_names`) of a gemmi model.
    Residues are numbered by :func:`_internal_number`, and each chain starts two numbers after the previous one's
    last, so that no two chains' residues are consecutive (``Structure.res_nums``)."""
    proteins = _proteins(model)
    names = _chain_names(proteins, chain, source)

    rows, last = [], None
    for name in names:
        ch, polymer = proteins[name]
        offset = 0 if last is None else last + 2 - polymer[0].seqid.num  # after the previous chain's last, gapped
        number, author = None, None
        for res in polymer:  # gemmi joins the atoms of one residue even where the file splits them
            icode = res.seqid.icode.strip()
            label = f"chain {ch.name} residue {res.name} {res.seqid.num}{icode}"
            number = _internal_number(number, author, res.seqid.num)
            author = res.seqid.num
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
                rows.append((atom.pos.tolist(), element.name, element.atomic_number, atom.name, res.name,
                             number + offset, ch.name, res.seqid.num, icode))
        last = number + offset  # this chain's last
    (coords, elements, numbers, atom_names, res_names, res_nums, chain_ids, author_nums,
     insertion_codes) = zip(*rows)
    return dict(
        coords=np.array(coords, dtype=np.float64),
        elements=np.array(elements),
        atomic_numbers=np.array(numbers, dtype=np.int64),
        atom_names=np.array(atom_names),
        res_names=np.array(res_names),
        res_nums=np.array(res_nums, dtype=np.int64),
        chain_id=",".join(names),
        chain_ids=np.array(chain_ids),
        author_nums=np.array(author_nums, dtype=np.int64),
        insertion_codes=np.array(insertion_codes),
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
        Author chain ID, several joined by commas ("A,B"), or "all". Default: every chain holding amino-acid
        residues.

    Returns
    -------
    Structure
        First conformer of every atom; caps (ACE, NH2, NME, FOR) and modified residues inside the chains kept;
        insertion codes kept for output. Hydrogens are dropped, and so are waters, ions, ligands and nucleic-acid
        chains, with a one-line warning that names them.

    Raises
    ------
    ValueError
        The message names the file (and line, residue or atom) and what to do, for: a missing or
        unparsable file; a PDB coordinate field that is not a number (line named); two atoms of one
        residue with the same name and altloc (lines named; never silently dropped); no protein chain,
        or a chain that is not there (the protein chains are listed with their lengths); a non-cap residue
        without CA or an amino-acid residue without N, CA, C or O; an unknown element; atoms closer than
        ``MIN_ATOM_DISTANCE`` (0.1 Å) to another atom, or all atoms at one point (collapsed coordinates).
    """
    st, path = _read_gemmi(path)
    arrays = _chain_arrays(st[0], chain, str(path))
    left_out = _left_out(st[0], arrays["chain_id"].split(","))
    # Validate here first so errors name the file, not just the structure name.
    source = f"{path}: chain {arrays['chain_id']}"
    residue_layout(arrays["res_nums"], arrays["res_names"], arrays["atom_names"], source)
    _check_distinct_positions(arrays, source)
    if left_out is not None:
        warnings.warn(f"{path}: left out {left_out}: CryoSampler models protein chains only", stacklevel=2)
    return Structure(name=_entry_name(path), **arrays)


def protein_chains(path) -> list[str]:
    """IDs of the chains of a PDB or mmCIF file's first model that hold amino-acid residues, in file order."""
    st, _ = _read_gemmi(path)
    return list(_proteins(st[0]))


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
        check_same_atoms(arrays["res_nums"], arrays["res_names"], arrays["atom_names"], reference, source)
        ensemble.append(arrays["coords"])
    return np.stack(ensemble)


def _to_gemmi(structure: Structure, coords: np.ndarray, first_model: int = 1) -> gemmi.Structure:
    """Build a gemmi structure with one model per row of ``coords`` (M, N, 3), numbered from ``first_model``."""
    st = gemmi.Structure()
    st.name = structure.name
    starts = structure.residue_starts
    for m, xyz in enumerate(coords):
        model = gemmi.Model(first_model + m)
        chain = None
        for start, stop in zip(starts[:-1], starts[1:]):
            if chain is None or chain.name != str(structure.chain_ids[start]):
                if chain is not None:
                    model.add_chain(chain)
                chain = gemmi.Chain(str(structure.chain_ids[start]))
            res = gemmi.Residue()
            res.name = str(structure.res_names[start])
            res.seqid = gemmi.SeqId(int(structure.author_nums[start]), str(structure.insertion_codes[start]) or " ")
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
    coords = validate_coords(coords, structure.n_atoms, str(path), allow_models=True)
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


def one_letter_code(res_name: str) -> str:
    """One-letter code of a residue name from gemmi's residue table: modified residues map to their parent
    (M3L → K), residues gemmi does not know to X."""
    info = gemmi.find_tabulated_residue(res_name)
    code = info.one_letter_code.upper() if info is not None else " "
    return code if code.strip() else "X"


def atomic_number(element: str) -> int:
    """Atomic number of an element symbol in gemmi's spelling ("C", "Se"); 0 for an unknown symbol."""
    return gemmi.Element(element).atomic_number


# Biopython 1.85's PairwiseAligner(mode="global", open_gap_score=-0.5) as the domain-motion benchmark uses it
# (match 1, mismatch 0, gap extension free, end gaps scored like inner ones), doubled to gemmi's integer scores;
# and BLOSUM62 with gap opening −10 and extension −1, which keeps unrelated sequences from lining up by chance.
_ALIGNMENT_SCORINGS = {"benchmark": gemmi.AlignmentScoring(), "blosum62": gemmi.AlignmentScoring("b")}
_ALIGNMENT_SCORINGS["benchmark"].match, _ALIGNMENT_SCORINGS["benchmark"].mismatch = 2, 0
_ALIGNMENT_SCORINGS["benchmark"].gapo, _ALIGNMENT_SCORINGS["benchmark"].gape = -1, 0


def align_sequences(seq_a: str, seq_b: str, scoring: str) -> tuple[str, int]:
    """Global alignment of two one-letter sequences by gemmi: (CIGAR string of M/I/D runs, number of identical
    residue pairs). scoring: "benchmark" or "blosum62" (see :data:`_ALIGNMENT_SCORINGS`)."""
    result = gemmi.align_string_sequences(list(seq_a), list(seq_b), [], _ALIGNMENT_SCORINGS[scoring])
    return result.cigar_str(), result.match_count
