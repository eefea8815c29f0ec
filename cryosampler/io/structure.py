"""The Structure type: the heavy atoms of a protein (one chain or several) as numpy arrays, which is all the rest of
CryoSampler sees of a protein.

A structure holds the heavy atoms of one protein chain or of several chains one after the other, first conformer
only, grouped contiguously by residue in file order; several chains are numbered so that no two of their residues
have consecutive numbers (``Structure.res_nums``), and keep their own IDs, numbers and insertion codes for output.
Residues inside the chain are kept even when written as HETATM (modified residues such as M3L, caps such as ACE);
waters, ions and ligands outside the chain are dropped (the reader says so). Files are read and written by
:mod:`cryosampler.io.atomic_files`.

Coordinates are in Å throughout.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

__all__ = ["CAP_RESIDUES", "BACKBONE_ATOMS", "Structure", "residue_layout", "validate_coords", "check_same_atoms"]

# Terminal caps: residues without CA that may sit inside a protein chain.
CAP_RESIDUES = frozenset({"ACE", "NH2", "NME", "FOR"})

# Backbone atoms every amino-acid residue must have; the structural losses index them.
BACKBONE_ATOMS = ("N", "CA", "C", "O")

def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def residue_layout(
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
            "chain (unsorted atoms); renumber the residues uniquely"
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


def validate_coords(coords, n_atoms: int, what: str, allow_models: bool) -> np.ndarray:
    coords = np.asarray(coords, dtype=np.float64)
    shapes = "(N, 3) or (M, N, 3)" if allow_models else "(N, 3)"
    ok = coords.shape[-2:] == (n_atoms, 3) and (coords.ndim == 2 or (allow_models and coords.ndim == 3))
    if not ok:
        raise ValueError(f"{what}: coords must have shape {shapes} with N={n_atoms}, got {coords.shape}")
    if not np.all(np.isfinite(coords)):
        raise ValueError(f"{what}: coords contain NaN or inf")
    return coords


def check_same_atoms(res_nums, res_names, atom_names, reference: Structure, source: str) -> None:
    """ValueError naming ``source`` and the first differing atom unless the atoms (N,) — residue numbers, residue
    names, atom names, in order — are ``reference``'s: the check that a model of an ensemble is the reference's."""
    for key, got in (("res_nums", res_nums), ("res_names", res_names), ("atom_names", atom_names)):
        got, want = np.asarray(got), getattr(reference, key)
        if got.shape != want.shape or np.any(got != want):
            if got.shape != want.shape:
                detail = f"{len(got)} atoms, reference {reference.name} has {len(want)}"
            else:
                i = int(np.flatnonzero(got != want)[0])
                detail = (f"atom {i} is {res_names[i]} {res_nums[i]} {atom_names[i]}, reference has "
                          f"{reference.res_names[i]} {reference.res_nums[i]} {reference.atom_names[i]}")
            raise ValueError(f"{source}: atoms do not match the reference ({detail})")


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
        Residue numbers, unique per residue, in file order: as read, the author numbers' steps where they go up
        (so gaps stay gaps), one for a repeated number with an insertion code, two where they go back; each further
        chain after the previous chain's last with a gap, so that nothing that joins consecutive residue numbers
        (restraints, validity checks) joins two chains. For one chain without insertion codes, the author numbers.
    chain_id : str
        The chain, or the chains joined by commas ("A,B,C,D").
    name : str
        Label of the source (file stem for structures read from disk).
    chain_ids : (N,) str, optional
        Each atom's chain (default: ``chain_id`` for every atom).
    author_nums : (N,) int64, optional
        Each atom's residue number as the file gives it, written back to files (default: ``res_nums``).
    insertion_codes : (N,) str, optional
        Each atom's residue insertion code as the file gives it ("" for none, the default), written back to files.
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
    chain_ids: np.ndarray | None = None
    author_nums: np.ndarray | None = None
    insertion_codes: np.ndarray | None = None
    residue_starts: np.ndarray = field(init=False, repr=False, compare=False)
    backbone_index: np.ndarray = field(init=False, repr=False, compare=False)
    backbone_res_nums: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        set_ = object.__setattr__  # frozen dataclass: normalise fields once, here
        n = len(np.asarray(self.res_nums))
        if n == 0:
            raise ValueError(f"{self.name}: structure has no atoms")
        set_(self, "coords", _readonly(validate_coords(self.coords, n, self.name, allow_models=False).copy()))
        defaults = {"chain_ids": np.full(n, self.chain_id), "author_nums": self.res_nums,
                    "insertion_codes": np.full(n, "")}
        for name, dtype in [
            ("elements", str),
            ("atom_names", str),
            ("res_names", str),
            ("atomic_numbers", np.int64),
            ("res_nums", np.int64),
            ("chain_ids", str),
            ("author_nums", np.int64),
            ("insertion_codes", str),
        ]:
            given = getattr(self, name)
            array = np.array(defaults[name] if given is None else given, dtype=dtype)
            if array.shape != (n,):
                raise ValueError(f"{self.name}: {name} must have shape ({n},), got {array.shape}")
            set_(self, name, _readonly(array))
        layout = residue_layout(self.res_nums, self.res_names, self.atom_names, self.name)
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
    def radius(self) -> float:
        """Largest distance (Å) of an atom from the all-atom centroid: how far the protein reaches from the centre
        of a box it is centred in, in any orientation."""
        return float(np.linalg.norm(self.coords - self.coords.mean(axis=0), axis=1).max())

    @property
    def sequence(self) -> str:
        """One-letter sequence of the amino-acid residues (caps excluded, length L_aa).

        Modified residues map to their parent (M3L -> K); residues gemmi does not know map to X.
        """
        # gemmi's residue table is read in atomic_files, gemmi's one wrapper, which imports this module.
        from cryosampler.io.atomic_files import one_letter_code

        return "".join(one_letter_code(self.res_names[i]) for i in self.backbone_index[:, 1])

    def with_coords(self, new_coords) -> Structure:
        """Copy with coordinates replaced; ``new_coords`` is (N, 3) in Å."""
        coords = validate_coords(new_coords, self.n_atoms, self.name, allow_models=False)
        return dataclasses.replace(self, coords=coords)

    def translated(self, shift) -> Structure:
        """Copy rigidly moved by ``shift`` (3,) in Å."""
        shift = np.asarray(shift, dtype=np.float64)
        if shift.shape != (3,):
            raise ValueError(f"{self.name}: shift must have shape (3,), got {shift.shape}")
        return self.with_coords(self.coords + shift)
