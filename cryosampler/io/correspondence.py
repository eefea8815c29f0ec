"""Which atoms of one structure are which atoms of another: by residue number (the calmodulin experiment's
proteins share a numbering), or by a global alignment of their sequences (the domain-motion benchmark's states,
numbered each its own way); and how alike two proteins' sequences are."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from cryosampler.io.atomic_files import align_sequences
from cryosampler.io.structure import BACKBONE_ATOMS, Structure

__all__ = ["shared_ca", "AtomMatchReport", "match_atoms", "aligned_residues", "aligned_atoms", "sequence_identity",
           "nearest_protein"]


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


def aligned_residues(seq_a: str, seq_b: str) -> np.ndarray:
    """Residue pairs of a global alignment of two one-letter sequences: (P, 2) int64, 0-based positions in
    ``seq_a`` and ``seq_b``; mismatched residues pair too, residues facing a gap do not."""
    if not seq_a or not seq_b:
        raise ValueError(f"cannot align an empty sequence (lengths {len(seq_a)} and {len(seq_b)})")
    cigar, _ = align_sequences(seq_a, seq_b, "benchmark")
    pairs, i, j = [], 0, 0
    for count, op in re.findall(r"(\d+)([MID])", cigar):
        count = int(count)
        if op == "M":
            pairs.extend((i + k, j + k) for k in range(count))
            i, j = i + count, j + count
        elif op == "I":  # residues of seq_a only
            i += count
        else:  # "D": residues of seq_b only
            j += count
    assert (i, j) == (len(seq_a), len(seq_b)), cigar
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def sequence_identity(query: str, other: str) -> float:
    """Fraction of ``query``'s residues that a global alignment pairs with the same residue of ``other``: 1.0
    for the same protein (or a fragment of it), near 0 for unrelated ones (calmodulin against adenylate kinase
    0.03).

    Scoring: BLOSUM62 with gap opening −10 and extension −1 (gemmi's ``AlignmentScoring("b")``). Cheap gaps
    let unrelated sequences line up letters by chance: with gemmi's default (every gap −1) calmodulin scored
    0.37 against adenylate kinase, with the benchmark's :func:`aligned_residues` scoring more.
    """
    if not query or not other:
        raise ValueError(f"cannot align an empty sequence (lengths {len(query)} and {len(other)})")
    _, identical = align_sequences(query, other, "blosum62")
    return identical / len(query)


def nearest_protein(query: str, proteins: list[dict]) -> tuple[str, float] | None:
    """(name, sequence identity) of the protein of ``proteins`` ({"name", "sequence"} each) nearest to the
    sequence ``query``, or None if there are none."""
    scored = [(p["name"], sequence_identity(query, p["sequence"])) for p in proteins]
    return max(scored, key=lambda s: s[1]) if scored else None


def aligned_atoms(a: Structure, b: Structure, atoms: tuple[str, ...] = BACKBONE_ATOMS) -> tuple[np.ndarray, np.ndarray]:
    """Atom indices (P·len(atoms),) into ``a`` and ``b`` of the named backbone ``atoms`` (a subset of N, CA, C,
    O) of the residues that :func:`aligned_residues` pairs between the two structures' sequences."""
    unknown = [x for x in atoms if x not in BACKBONE_ATOMS]
    if unknown or not atoms:
        raise ValueError(f"atoms must be a subset of {BACKBONE_ATOMS}, got {atoms}")
    pairs = aligned_residues(a.sequence, b.sequence)
    if len(pairs) < 3:
        raise ValueError(f"{a.name} and {b.name} pair only {len(pairs)} residues by sequence; are they the same "
                         "protein?")
    columns = [BACKBONE_ATOMS.index(x) for x in atoms]
    return a.backbone_index[pairs[:, 0]][:, columns].ravel(), b.backbone_index[pairs[:, 1]][:, columns].ravel()
