"""Validity of sampled structures: the one definition that ``cryosampler sample`` and ``fit``, the notebooks and the
benchmarks use. Every sample is judged against its reference's covalent geometry: clashes, bond-length and
bond-angle deviations from the reference, chain breaks, and BioEmu's physicality filter.

Bonds are inferred from the reference (:func:`covalent_bonds`); bond angles are the pairs of bonds that share an
atom. Everything works on heavy atoms only, so a backbone-only reference (N, CA, C, O) simply has fewer bonds.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from cryosampler.evaluation.metrics import checked_coords
from cryosampler.io.structure import Structure
from cryosampler.model.structural_losses import BOND_CUTOFF, bond_pairs

__all__ = ["validity", "sample_validity", "clash_counts", "validity_summary", "validity_warning",
           "validity_table", "VALIDITY_FOOTNOTE",
           "covalent_bonds", "bond_angles",
           "BOND_CUTOFF", "CLASH_CUTOFF", "CHAIN_BREAK", "BIOEMU_MAX_CA_CA", "BIOEMU_MAX_C_N", "BIOEMU_CLASH",
           "BIOEMU_MIN_SEPARATION"]

# Å. Non-bonded heavy-atom contacts (H-bonds included) are ≥ 2.5 Å in well-refined structures.
CLASH_CUTOFF = 2.2
# Å. Consecutive CA atoms are 3.8 Å apart (trans peptide; 2.9 Å cis); beyond this the chain is broken.
CHAIN_BREAK = 4.2

# BioEmu's filter of unphysical samples, as microsoft/bioemu defines it (src/bioemu/convert_chemgraph.py,
# _filter_unphysical_traj_masks; filter_unphysical_traj's defaults): a sample passes when every CA–CA of
# consecutive residues is < 4.5 Å, every peptide C–N of consecutive residues < 2.0 Å, and no two atoms of
# residues at least 3 apart in sequence (mdtraj.compute_contacts skips neighbours i+1 and i+2) are within 1.0 Å.
BIOEMU_MAX_CA_CA = 4.5  # Å
BIOEMU_MAX_C_N = 2.0  # Å
BIOEMU_CLASH = 1.0  # Å
BIOEMU_MIN_SEPARATION = 3  # residues


def covalent_bonds(reference: Structure) -> np.ndarray:
    """Atom pairs (n_bonds, 2) closer than BOND_CUTOFF in the reference, within a residue or peptide C–N
    (``structural_losses.bond_pairs``)."""
    return bond_pairs(reference.coords, reference.res_nums, reference.atom_names)


def bond_angles(bonds: np.ndarray) -> np.ndarray:
    """Atom triples (n_angles, 3) (i, j, k), i < k, where bonds (n_bonds, 2) join j to both i and k."""
    neighbours: dict[int, list[int]] = {}
    for a, b in bonds.tolist():
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    triples = [(i, j, k) for j, around in sorted(neighbours.items()) for i in around for k in around if i < k]
    return np.asarray(triples, dtype=np.int64).reshape(-1, 3)


def _distances(coords: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """coords (..., N, 3), pairs (P, 2) → (..., P) distances, Å."""
    return np.linalg.norm(coords[..., pairs[:, 0], :] - coords[..., pairs[:, 1], :], axis=-1)


def _angles(coords: np.ndarray, triples: np.ndarray) -> np.ndarray:
    """coords (..., N, 3), triples (T, 3) → (..., T) angles i–j–k at j, degrees."""
    u = coords[..., triples[:, 0], :] - coords[..., triples[:, 1], :]
    v = coords[..., triples[:, 2], :] - coords[..., triples[:, 1], :]
    # atan2 of |u × v| and u · v stays accurate near 0° and 180°, unlike arccos.
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1), np.sum(u * v, axis=-1)))


def _count_clashes(coords: np.ndarray, res_nums: np.ndarray, cutoff: float, min_separation: int = 2) -> int:
    """Atom pairs of coords (N, 3) closer than ``cutoff`` (Å; at most, for the KD-tree) whose res_nums (N,)
    differ by ``min_separation`` or more."""
    close = cKDTree(coords).query_pairs(cutoff, output_type="ndarray")  # (P, 2)
    nums = res_nums[close]
    return int(np.sum(np.abs(nums[:, 0] - nums[:, 1]) >= min_separation))


def clash_counts(samples: np.ndarray, reference: Structure, clash_cutoff: float = CLASH_CUTOFF) -> np.ndarray:
    """Clashes of each sample (S,) int64: heavy-atom pairs closer than ``clash_cutoff`` (Å) whose residue numbers
    differ by 2 or more (see :func:`validity`); samples (S, N, 3) Å in the atom order of ``reference``."""
    samples = checked_coords(samples, "samples", "SN", reference.n_atoms)
    return np.array([_count_clashes(x, reference.res_nums, clash_cutoff) for x in samples], dtype=np.int64)


def _consecutive_ca(reference: Structure) -> np.ndarray:
    """CA atom pairs (L', 2) of amino-acid residues with consecutive residue numbers."""
    ca, ca_nums = reference.backbone_index[:, 1], reference.backbone_res_nums
    consecutive = np.flatnonzero(ca_nums[1:] == ca_nums[:-1] + 1)
    return np.stack([ca[consecutive], ca[consecutive + 1]], axis=1)


def _peptide_bonds(reference: Structure) -> np.ndarray:
    """Atom pairs (P, 2): C of residue r and N of residue r + 1 (residue numbers), wherever both exist (caps
    included: ACE's C, NME's N)."""
    names, nums = reference.atom_names, reference.res_nums
    carbon = {int(nums[i]): i for i in np.flatnonzero(names == "C")}
    nitrogen = {int(nums[i]): i for i in np.flatnonzero(names == "N")}
    pairs = [(i, nitrogen[r + 1]) for r, i in carbon.items() if r + 1 in nitrogen]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def validity(samples: np.ndarray, reference: Structure, clash_cutoff: float = CLASH_CUTOFF) -> dict[str, float]:
    """Stereochemical validity of samples, summed up over the ensemble (:func:`sample_validity` per sample).

    Bonds are inferred from the reference: atom pairs closer than ``BOND_CUTOFF`` (1.9 Å) within one residue,
    or the peptide C–N between consecutive residue numbers. Clashes are heavy-atom pairs closer than
    ``clash_cutoff`` whose residue numbers differ by 2 or more (so never bonded nor 1-3 related); a
    disulfide S–S (2.05 Å) between distant cysteines would count as one. Deposited models have some too:
    4CLN (2.2 Å) has three O–O/O–N contacts of 2.04-2.08 Å in its Ca²⁺ loops, hence ``clashes_reference``.

    Parameters
    ----------
    samples : (S, N, 3) Å, atom order of ``reference``
    reference : Structure
    clash_cutoff : float, Å

    Returns
    -------
    dict of float
        ``bond_dev_mean``, ``bond_dev_max``: |d_sample − d_ref| over bonds and samples (Å);
        ``ca_ca_dev_mean``, ``ca_ca_dev_max``: the same for CA–CA of consecutive residue numbers (Å);
        ``clashes_per_sample``: clashing pairs, averaged over samples; ``clashes_reference``: the same count
        for the reference itself; ``n_bonds``: bonds inferred.
    """
    samples = checked_coords(samples, "samples", "SN", reference.n_atoms)
    bonds = covalent_bonds(reference)  # (n_bonds, 2)
    bond_dev = np.abs(_distances(samples, bonds) - _distances(reference.coords, bonds))  # (S, n_bonds)

    ca_pairs = _consecutive_ca(reference)  # (L', 2)
    ca_dev = np.abs(_distances(samples, ca_pairs) - _distances(reference.coords, ca_pairs))  # (S, L')

    clashes = clash_counts(samples, reference, clash_cutoff)

    def mean_max(dev: np.ndarray) -> tuple[float, float]:
        return (float(dev.mean()), float(dev.max())) if dev.size else (0.0, 0.0)

    (bond_mean, bond_max), (ca_mean, ca_max) = mean_max(bond_dev), mean_max(ca_dev)
    return {"bond_dev_mean": bond_mean, "bond_dev_max": bond_max, "ca_ca_dev_mean": ca_mean,
            "ca_ca_dev_max": ca_max, "clashes_per_sample": float(np.mean(clashes)),
            "clashes_reference": float(_count_clashes(reference.coords, reference.res_nums, clash_cutoff)),
            "n_bonds": float(len(bonds))}


def _rms_max(dev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of dev (S, P): root mean square and largest |value|, NaN for P = 0."""
    if dev.shape[1] == 0:
        return np.full(len(dev), np.nan), np.full(len(dev), np.nan)
    return np.sqrt(np.mean(dev ** 2, axis=1)), np.abs(dev).max(axis=1)


def _row_max(values: np.ndarray) -> np.ndarray:
    """Largest value per row of (S, P), NaN for P = 0."""
    return values.max(axis=1) if values.shape[1] else np.full(len(values), np.nan)


def sample_validity(samples: np.ndarray, reference: Structure, clash_cutoff: float = CLASH_CUTOFF,
                    first: int = 0) -> pd.DataFrame:
    """The validity of each sample, one row per sample.

    Parameters
    ----------
    samples : (S, N, 3) Å, atom order of ``reference``
    reference : Structure, whose covalent geometry the samples are judged against
    clash_cutoff : float, Å
    first : int
        Index of the first sample, for batches of a larger ensemble.

    Returns
    -------
    DataFrame with columns
        ``sample``: index, from ``first``;
        ``clashes``: heavy-atom pairs closer than ``clash_cutoff`` whose residue numbers differ by 2 or more
        (never bonded nor 1-3 related; see :func:`validity`);
        ``bond_dev_rmsd``, ``bond_dev_max`` (Å): root mean square and largest |d_sample − d_ref| over the bonds
        inferred from the reference (:func:`covalent_bonds`);
        ``angle_dev_rmsd``, ``angle_dev_max`` (degrees): the same for the angles between those bonds;
        ``chain_breaks``: CA–CA pairs of consecutive residue numbers farther apart than ``CHAIN_BREAK``
        (4.2 Å);
        ``ca_ca_max``, ``c_n_max`` (Å): the longest CA–CA and peptide C–N of consecutive residue numbers;
        ``bioemu_clashes``: atom pairs within ``BIOEMU_CLASH`` (1.0 Å) of residues ``BIOEMU_MIN_SEPARATION`` (3)
        or more apart;
        ``bioemu_ca_ca_ok``, ``bioemu_c_n_ok``, ``bioemu_clash_free``: the three tests of BioEmu's filter
        (CA–CA < 4.5 Å, C–N < 2.0 Å, no such clash), and ``bioemu_physical``: all three.

    Consecutive residues are consecutive residue *numbers*: BioEmu takes consecutive residues of its own
    samples, which have no gaps; here a reference with missing residues (a gap in its numbering) is not failed
    at its gaps. Maxima over no pairs (a one-residue reference) are NaN and pass.
    """
    samples = checked_coords(samples, "samples", "SN", reference.n_atoms)
    bonds = covalent_bonds(reference)  # (n_bonds, 2)
    angles = bond_angles(bonds)  # (n_angles, 3)
    bond_rms, bond_max = _rms_max(_distances(samples, bonds) - _distances(reference.coords, bonds))
    angle_rms, angle_max = _rms_max(_angles(samples, angles) - _angles(reference.coords, angles))
    ca_ca = _distances(samples, _consecutive_ca(reference))  # (S, L')
    c_n = _distances(samples, _peptide_bonds(reference))  # (S, L'')
    ca_ca_max, c_n_max = _row_max(ca_ca), _row_max(c_n)
    bioemu_clashes = np.array([_count_clashes(x, reference.res_nums, BIOEMU_CLASH, BIOEMU_MIN_SEPARATION)
                               for x in samples], dtype=np.int64)
    ca_ca_ok, c_n_ok = np.all(ca_ca < BIOEMU_MAX_CA_CA, axis=1), np.all(c_n < BIOEMU_MAX_C_N, axis=1)
    return pd.DataFrame({
        "sample": np.arange(first, first + len(samples)),
        "clashes": clash_counts(samples, reference, clash_cutoff),
        "bond_dev_rmsd": bond_rms, "bond_dev_max": bond_max,
        "angle_dev_rmsd": angle_rms, "angle_dev_max": angle_max,
        "chain_breaks": np.sum(ca_ca > CHAIN_BREAK, axis=1),
        "ca_ca_max": ca_ca_max, "c_n_max": c_n_max,
        "bioemu_clashes": bioemu_clashes,
        "bioemu_ca_ca_ok": ca_ca_ok, "bioemu_c_n_ok": c_n_ok, "bioemu_clash_free": bioemu_clashes == 0,
        "bioemu_physical": ca_ca_ok & c_n_ok & (bioemu_clashes == 0),
    })


def _ensemble_numbers(table: pd.DataFrame, reference: Structure, clash_cutoff: float) -> dict[str, float]:
    """A :func:`sample_validity` table of ``reference``'s samples summed up: the columns of
    :func:`validity_table`."""
    # Every sample has the same bonds and angles, so the overall rms is the rms of the per-sample rms values.
    return {"samples": len(table),
            "clashes_per_sample": float(table["clashes"].mean()),
            "clashes_reference": float(_count_clashes(reference.coords, reference.res_nums, clash_cutoff)),
            "chain_breaks_per_sample": float(table["chain_breaks"].mean()),
            "bond_dev_rmsd": float(np.sqrt(np.mean(table["bond_dev_rmsd"] ** 2))),
            "bond_dev_max": float(table["bond_dev_max"].max()),
            "angle_dev_rmsd": float(np.sqrt(np.mean(table["angle_dev_rmsd"] ** 2))),
            "angle_dev_max": float(table["angle_dev_max"].max()),
            "ca_ca_max": float(table["ca_ca_max"].max()),
            "bioemu_pass": float(table["bioemu_physical"].mean())}


def validity_summary(table: pd.DataFrame, reference: Structure, clash_cutoff: float = CLASH_CUTOFF,
                     noun: str = "samples") -> str:
    """One line from a :func:`sample_validity` table of ``reference``'s samples: clashes and chain breaks per
    sample (and the reference's clashes), the rms bond-length and bond-angle deviations over all samples, and
    how many pass BioEmu's filter. ``noun`` names the rows ("samples", "models")."""
    numbers = _ensemble_numbers(table, reference, clash_cutoff)
    n = len(table)
    one = noun.removesuffix("s")
    return (f"{n} {noun if n != 1 else one}, {numbers['clashes_per_sample']:.1f} clashes < {clash_cutoff:g} Å and "
            f"{table['chain_breaks'].mean():.1f} chain breaks (CA–CA > {CHAIN_BREAK:g} Å) per {one} (reference "
            f"{numbers['clashes_reference']:.0f} clashes), bond lengths "
            f"±{numbers['bond_dev_rmsd']:.3f} Å and angles ±{numbers['angle_dev_rmsd']:.1f}° rms from the reference, "
            f"{int(table['bioemu_physical'].sum())}/{n} pass BioEmu's filter")


def validity_warning(table: pd.DataFrame, noun: str = "samples") -> str | None:
    """One line on the rows of a :func:`sample_validity` table that fail BioEmu's filter of unphysical
    structures (how many, their clashes and chain breaks), or None if every row passes: such rows are broken
    structures, whose spread is breakage, not motion."""
    failed = table[~table["bioemu_physical"].astype(bool)]
    if failed.empty:
        return None
    one = noun.removesuffix("s")

    def span(column: str) -> str:
        low, high = int(failed[column].min()), int(failed[column].max())
        return f"{low}" if low == high else f"{low}–{high}"

    return (f"{len(failed)} of {len(table)} {noun} fail BioEmu's filter of unphysical structures ({span('clashes')} "
            f"clashes and {span('chain_breaks')} chain breaks per {one} among them): they are broken structures, "
            f"and their spread (RMSD, cryosampler report's RMSF) measures the breakage, not motion")


def validity_table(ensembles: Iterable[tuple[dict, np.ndarray, Structure]],
                   clash_cutoff: float = CLASH_CUTOFF) -> pd.DataFrame:
    """The validity of several ensembles side by side, one row each: the table notebooks 05, 06 and 07 save, so
    that a method's samples can be set against the baselines' and against the true structures themselves.

    Parameters
    ----------
    ensembles : iterable of (labels, samples, reference)
        labels: dict of the row's label columns (e.g. {"slot": "4CLN", "method": "Ours"}); samples: (S, N, 3) Å
        in the atom order of reference (Structure), whose covalent geometry they are judged against
        (:func:`sample_validity`). A single structure is an ensemble of one, (1, N, 3).
    clash_cutoff : float, Å

    Returns
    -------
    DataFrame, one row per ensemble in input order: the label columns (in order of first appearance; missing
    labels are NaN), then
        ``samples``: S;
        ``clashes_per_sample``: clashes (< ``clash_cutoff``, residues ≥ 2 apart), mean over samples;
        ``clashes_reference``: the same count for the reference itself;
        ``chain_breaks_per_sample``: CA–CA of consecutive residue numbers > ``CHAIN_BREAK``, mean over samples;
        ``bond_dev_rmsd``, ``bond_dev_max`` (Å): rms and largest bond-length deviation from the reference over all
        bonds and samples; ``angle_dev_rmsd``, ``angle_dev_max`` (degrees): the same for bond angles;
        ``ca_ca_max`` (Å): the longest consecutive CA–CA of any sample;
        ``bioemu_pass``: fraction of samples that pass BioEmu's filter.
    """
    rows = []
    for labels, samples, reference in ensembles:
        clashing = sorted(set(labels) & set(_VALIDITY_COLUMNS))
        if clashing:
            raise ValueError(f"label {clashing[0]!r} is a validity column: rename it")
        table = sample_validity(samples, reference, clash_cutoff)
        rows.append({**labels, **_ensemble_numbers(table, reference, clash_cutoff)})
    if not rows:
        raise ValueError("no ensembles to judge: give at least one (labels, samples, reference)")
    table = pd.DataFrame(rows)
    return table[[c for c in table.columns if c not in _VALIDITY_COLUMNS] + list(_VALIDITY_COLUMNS)]


_VALIDITY_COLUMNS = ("samples", "clashes_per_sample", "clashes_reference", "chain_breaks_per_sample",
                     "bond_dev_rmsd", "bond_dev_max", "angle_dev_rmsd", "angle_dev_max", "ca_ca_max", "bioemu_pass")

VALIDITY_FOOTNOTE = (
    f"Each row judges an ensemble against its reference's covalent geometry (cryosampler.evaluation.validate). "
    f"clashes_per_sample: heavy-atom pairs closer than {CLASH_CUTOFF:g} Å whose residues are ≥ 2 apart, mean "
    f"over samples (clashes_reference: the reference's own); chain_breaks_per_sample: consecutive CA–CA farther "
    f"than {CHAIN_BREAK:g} Å; bond_dev_* (Å) and angle_dev_* (°): rms and largest deviation of bond lengths and "
    f"bond angles from the reference's; ca_ca_max (Å): longest consecutive CA–CA; bioemu_pass: fraction passing "
    f"BioEmu's physicality filter (CA–CA < {BIOEMU_MAX_CA_CA:g} Å, C–N < {BIOEMU_MAX_C_N:g} Å, no atoms within "
    f"{BIOEMU_CLASH:g} Å of residues ≥ {BIOEMU_MIN_SEPARATION} apart). A structure judged against itself has no "
    f"deviation by construction.")
