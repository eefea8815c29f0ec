"""Fitting atomic models into maps of known structures, method against method: the trained read-out of
``cryosampler fit`` alone, recycled and refined, against classical fitting that needs no trained model
(``benchmarks/fit_methods.py`` is its command line).

Map sets:

* :func:`own_maps_cases`: notebook 07's folder. Maps ``fit_maps/4A`` and ``fit_maps/8A`` (named
  ``user_maps.fit_map_name`` of their path frame, B 50 Å², SNR 1), reference ``adk_closed_1AKE.pdb``, one model
  per ``runs/*/checkpoint.pt``; the truth is the frame of adenylate kinase's path (``transition.read_adk_path``,
  moved by ``user_maps.MAP_FRAME``) and the RMSD is over heavy atoms after superposition, as notebook 07 scores it.
* :func:`domain_motion_cases`: notebook 06's folder. ``proteins.csv`` lists each protein's reference
  (``structures/<protein>_<state i>.pdb``) and maps (``maps/<protein>/<state>.mrc``, rendered at 8 Å from the state
  superposed on the reference), the model is ``run/checkpoint.pt``; the truth is ``structures/<protein>_<state>.pdb``
  and the RMSD is the benchmark's (backbone, residues paired by sequence; ``coverage.aligned_rmsd_matrix``).

Each map is ingested onto the model's grid around the reference (fit probes off: notebook 06's far states need
it), and then fitted by every method (``METHODS``): the read-out (``readout.fit_map``), the read-out recycled
``recycle`` times, each refined (``refine.refine``, rendered at the map set's resolution); the rigid reference
refined; the normal-mode fit of the reference (``physics.nma_fit``) alone and refined; the rigid reference
itself; and, per model, the better (by map–model correlation) of the refined read-out and the refined normal-mode
fit, which is what ``fit --refine --normal-modes`` keeps. Per map and method: RMSD to the truth, map–model
correlation at the map's resolution, clashes and bond deviation from the reference (``validate.sample_validity``),
seconds (ingestion excluded, measured apart).

:func:`compare_fit_methods` writes ``fit_methods.{csv,md}`` (method × map set × resolution: mean and largest RMSD,
mean correlation, clashes, bond deviation, seconds per map) and ``fit_methods_maps.{csv,md}`` (one row per map and
method) under its ``tables`` folder (``evaluation.tables.save_table``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from cryosampler.evaluation.coverage import aligned_rmsd_matrix
from cryosampler.evaluation.tables import save_table
from cryosampler.evaluation.validate import sample_validity
from cryosampler.experiments.transition import adk_files, read_adk_path
from cryosampler.experiments.user_maps import MAP_FRAME, fit_map_name
from cryosampler.ingest import ingest_map, map_model_correlation
from cryosampler.io.atomic_files import read_structure
from cryosampler.io.grid import MapGrid
from cryosampler.io.structure import Structure
from cryosampler.model.checkpoint import load_checkpoint, model_from_checkpoint
from cryosampler.physics.nma_fit import NMA_FIT_PRESETS, nma_fit
from cryosampler.physics.superpose import rmsd
from cryosampler.readout import fit_map
from cryosampler.reference import prepare_reference
from cryosampler.refine import REFINE_PRESETS, refine

__all__ = ["METHODS", "Case", "own_maps_cases", "domain_motion_cases", "first_maps", "fit_case",
           "summary_table", "FOOTNOTE", "compare_fit_methods"]

# Methods in table order; "{n}" is the number of recycles (--recycle of the script).
METHODS = ("rigid reference", "rigid reference + refine", "ANM fit", "ANM fit + refine", "read-out",
           "read-out + refine", "read-out, recycled ×{n}", "read-out, recycled ×{n} + refine",
           "read-out or ANM fit, refined (higher r)")


@dataclass(frozen=True)
class Case:
    """One map of a known structure, with what fitting it needs."""

    map_set: str  # e.g. "own maps 4 Å"
    path: Path  # the map file
    resolution: float  # Å, the map's
    reference: Structure  # fitted into the map, in the map's frame
    checkpoints: dict[str, Path]  # model name → checkpoint.pt whose read-out is scored
    score: Callable[[np.ndarray], float]  # (N, 3) Å in the map's frame, reference's atom order → RMSD (Å) to truth


def own_maps_cases(work: Path) -> list[Case]:
    """The maps of notebook 07's fit_maps folders (module docstring)."""
    reference = read_structure(work / "adk_closed_1AKE.pdb")
    frames = read_adk_path(adk_files()).frames + np.asarray(MAP_FRAME)  # (98, N, 3) Å, the maps' frame
    checkpoints = {p.parent.name: p for p in sorted(work.glob("runs/*/checkpoint.pt"))}
    cases = []
    for folder, resolution in (("4A", 4.0), ("8A", 8.0)):
        for frame in range(len(frames)):
            path = work / "fit_maps" / folder / f"{fit_map_name(frame)}.mrc"
            if path.is_file():
                cases.append(Case(f"own maps {folder}", path, resolution, reference, checkpoints,
                                  lambda coords, truth=frames[frame]: rmsd(coords, truth)))
    return cases


def domain_motion_cases(work: Path, resolution: float = 8.0) -> list[Case]:
    """The training maps of notebook 06 (module docstring), listed by its proteins.csv."""
    listing = pd.read_csv(work / "proteins.csv")
    checkpoint = work / "run" / "checkpoint.pt"
    cases = []
    for row in listing.itertuples():
        reference = read_structure(work / row.reference)
        state = Path(row.map).name.removesuffix(".mrc")
        truth = read_structure(work / "structures" / f"{row.protein}_{state}.pdb")
        cases.append(Case(f"domain motion ({row.protein})", work / row.map, resolution, reference,
                          {"run": checkpoint} if checkpoint.is_file() else {},
                          lambda coords, reference=reference, truth=truth:
                          float(aligned_rmsd_matrix(coords[None], reference, [truth])[0, 0])))
    return cases


def fit_case(case: Case, models: dict[str, object], grid: MapGrid, recycle: int, refine_preset: str,
             nma_preset: str) -> list[dict]:
    """Every method of ``METHODS`` on one map: one row each (module docstring's columns)."""
    reference, centre = case.reference, case.reference.coords.mean(0)
    tic = time.perf_counter()
    volume, _ = ingest_map(case.path, grid, reference.coords, reference.atomic_numbers, centre, probes=False,
                           res_nums=reference.res_nums)
    ingest_seconds = time.perf_counter() - tic
    at_resolution = dataclasses.replace(grid, resolution=case.resolution)
    refinement = REFINE_PRESETS[refine_preset]
    rows = []

    def score(method: str, model: str, coords: np.ndarray, seconds: float) -> None:
        validity = sample_validity(coords[None], reference).iloc[0]
        rows.append({"map_set": case.map_set, "resolution": case.resolution, "map": case.path.name,
                     "method": method.format(n=recycle), "model": model, "rmsd": case.score(coords),
                     "correlation": map_model_correlation(volume, coords, reference.atomic_numbers, at_resolution,
                                                          centre),
                     "clashes": int(validity["clashes"]), "bond_dev_rmsd": float(validity["bond_dev_rmsd"]),
                     "seconds": seconds, "ingest_seconds": ingest_seconds})

    def refined(coords: np.ndarray) -> np.ndarray:
        return refine(coords - centre, reference, volume, at_resolution, refinement).coords + centre

    score(METHODS[0], "—", reference.coords, 0.0)
    tic = time.perf_counter()
    fitted = refined(reference.coords)
    score(METHODS[1], "—", fitted, time.perf_counter() - tic)
    tic = time.perf_counter()
    anm = nma_fit(reference, reference.coords - centre, volume, at_resolution, NMA_FIT_PRESETS[nma_preset])
    anm_seconds = time.perf_counter() - tic
    score(METHODS[2], "—", anm.coords + centre, anm_seconds)
    tic = time.perf_counter()
    fitted = refined(anm.coords + centre)
    score(METHODS[3], "—", fitted, anm_seconds + time.perf_counter() - tic)
    for name, (model, placed) in models.items():
        for method, cycles in ((METHODS[4], 0), (METHODS[6], recycle)):
            tic = time.perf_counter()
            result = fit_map(model, reference, placed, volume, recycle=cycles)
            seconds = time.perf_counter() - tic
            score(method, name, result.coords, seconds)
            tic = time.perf_counter()
            fitted = refined(result.coords)
            score(METHODS[METHODS.index(method) + 1], name, fitted, seconds + time.perf_counter() - tic)
        # fit --refine --normal-modes (readout.fit_map): of the two refined models, the one with the higher r.
        anm_row, readout_row = rows[3], rows[-3]
        assert (anm_row["method"], readout_row["method"]) == (METHODS[3], METHODS[5])
        chosen = max((anm_row, readout_row), key=lambda row: row["correlation"])
        rows.append({**chosen, "method": METHODS[8], "model": name,
                     "seconds": anm_row["seconds"] + readout_row["seconds"]})
    return rows


def summary_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per map set, resolution, method and model: mean and largest RMSD (Å), mean correlation, mean clashes,
    mean bond deviation (Å) and mean seconds per map; in the order the rows come."""
    keys = ["map_set", "resolution", "method", "model"]
    grouped = rows.groupby(keys, sort=False)
    table = grouped.agg(maps=("rmsd", "size"), rmsd_mean=("rmsd", "mean"), rmsd_max=("rmsd", "max"),
                        correlation=("correlation", "mean"), clashes=("clashes", "mean"),
                        bond_dev_rmsd=("bond_dev_rmsd", "mean"), seconds=("seconds", "mean"))
    return table.reset_index()


FOOTNOTE = ("RMSD (Å) to the structure each map was made from (own maps: heavy atoms after superposition; domain "
            "motion: the benchmark's aligned backbone). correlation: map–model Pearson r at the map set's "
            "resolution on the model's grid; clashes: heavy-atom pairs closer than 2.2 Å from residues 2 or more "
            "apart; bond_dev_rmsd: bond lengths' RMS deviation from the reference (Å); seconds: per map, "
            "ingestion excluded, on the machine and threads it ran on. model: the checkpoint read out (— for "
            "methods without one).")


def first_maps(cases: list[Case], limit: int) -> list[Case]:
    """At most ``limit`` cases of each map set, the first ones, in their order (a quick look)."""
    return [c for k, c in enumerate(cases) if sum(d.map_set == c.map_set for d in cases[:k]) < limit]


def compare_fit_methods(cases: list[Case], tables: Path, recycle: int = 1, refine_preset: str = "default",
                        nma_preset: str = "default", log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Fit every case by every method (:func:`fit_case`; each checkpoint loaded once, the model's grid, or
    ``MapGrid()`` without a model), write ``fit_methods_maps`` (a row per map and method) and ``fit_methods``
    (:func:`summary_table`) under ``tables`` and return the latter; ``log`` gets a line per map as it is fitted."""
    rows, loaded = [], {}
    for k, case in enumerate(cases, start=1):
        models = {}
        for name, path in case.checkpoints.items():
            if path not in loaded:
                loaded[path] = model_from_checkpoint(load_checkpoint(path))
            models[name] = (loaded[path], prepare_reference(loaded[path], case.reference, source=str(case.path)))
        grid = next(iter(loaded.values())).config.grid if loaded else MapGrid()
        new = fit_case(case, models, grid, recycle, refine_preset, nma_preset)
        rows += new
        if log is not None:
            scores = ", ".join(f"{r['method']} ({r['model']}) {r['rmsd']:.2f} Å" for r in new)
            log(f"map {k}/{len(cases)} {case.path}: {scores}")
    per_map = pd.DataFrame(rows)
    save_table(per_map, tables, "fit_methods_maps", footnote=FOOTNOTE)
    summary = summary_table(per_map)
    save_table(summary, tables, "fit_methods", footnote=FOOTNOTE)
    return summary
