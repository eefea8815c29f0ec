"""Maps as a user has them: map files of their own voxel size, box, origin and axis order, blurred and noisy,
from a continuous ensemble with unequal populations (what the k-means volumes of a heterogeneous reconstruction
look like). They are written as files and read back through :mod:`cryosampler.ingest`, the code user maps take.

A map's frame is the frame of the structures it is rendered from (the user's reference is fitted there). Voxel
(i, j, k) of a map of :class:`Gridding` ``g`` is centred at ``(g.corner + (i, j, k)) * g.apix`` Å.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryosampler.physics.degrade import DegradeConfig, degrade
from cryosampler.evaluation.metrics import progress_wasserstein, score_ensemble
from cryosampler.evaluation.validate import VALIDITY_FOOTNOTE as _VALIDITY_BASICS
from cryosampler.physics.correlation import map_correlation
from cryosampler.ingest import ingest_map
from cryosampler.io.files import staged_directory
from cryosampler.io.mrc import write_map_file
from cryosampler.io.structure import Structure
from cryosampler.io.atomic_files import read_ensemble
from cryosampler.physics.render import render_density
from cryosampler.io.grid import MapGrid
from cryosampler.physics.superpose import rmsd

__all__ = ["Gridding", "gridding_around", "random_gridding", "render_gridded", "write_gridded", "path_population",
           "draw_frames",
           "random_griddings", "write_map_folder", "APIX_RANGE", "BOX_RANGE", "CLEAN_RESOLUTION", "BASINS",
           "TRAINING_RECIPES", "FIT_RECIPES", "MAP_FRAME", "SLUGS", "fit_map_name", "ingest_table", "INGEST_FOOTNOTE",
           "sampling_scores", "progress_table", "fit_table", "own_maps_table", "own_maps_footnote",
           "validity_ensembles", "VALIDITY_FOOTNOTE"]

APIX_RANGE = (1.0, 2.7)  # Å, voxel sizes users' maps come at (issue 10: 0.8–3 Å)
BOX_RANGE = (96, 200)  # voxels per side
# Å. A clean map is rendered at max(CLEAN_RESOLUTION, 2 apix): the finest detail both the user's grid and the
# model's 2 Å grid (Nyquist 4 Å) hold, so ingestion compares like with like.
CLEAN_RESOLUTION = 4.0
# Populations along a path, as (position along the path 0–1, width, weight): a populated start basin, a less
# populated end basin and a thin spread of transition states (the uniform rest, weight 0.1). Each basin's
# Gaussian is normalised over the path's frames, so its weight is its share even where half of it would fall
# beyond an end of the path.
BASINS = ((0.0, 0.12, 0.6), (1.0, 0.12, 0.3))
# Issue 10's kinds of training maps, and the maps single-map read-out (cryosampler fit) is measured on.
TRAINING_RECIPES = {
    "clean": DegradeConfig(),
    "6 Å": DegradeConfig(b_factor=100.0, resolution=6.0),
    "6 Å, SNR 0.3": DegradeConfig(b_factor=100.0, resolution=6.0, snr=0.3),
}
FIT_RECIPES = {
    "4 Å": DegradeConfig(b_factor=50.0, resolution=4.0, snr=1.0),
    "8 Å": DegradeConfig(b_factor=50.0, resolution=8.0, snr=1.0),
}

# Å. Where notebook 07 puts its path in the maps' frame: an arbitrary offset, as real maps rarely sit at the origin.
MAP_FRAME = (118.3, 96.2, 131.7)
# File and folder names of the recipes above.
SLUGS = {"clean": "clean", "6 Å": "6A", "6 Å, SNR 0.3": "6A_snr0.3", "4 Å": "4A", "8 Å": "8A"}


@dataclass(frozen=True)
class Gridding:
    """How one map file is gridded."""

    apix: float  # Å per voxel
    box: tuple[int, int, int]  # voxels along x, y, z
    corner: tuple[int, int, int]  # voxel (0, 0, 0) is centred at corner * apix Å (map frame)
    axes: tuple[int, int, int] = (1, 2, 3)  # stored order MAPC, MAPR, MAPS
    use_start: bool = False  # place the box by N?START (ORIGIN zero) rather than by ORIGIN


def gridding_around(coords: np.ndarray, apix: float, box, shift=(0.0, 0.0, 0.0), axes=(1, 2, 3),
                    use_start: bool = False) -> Gridding:
    """A box of ``box`` (x, y, z) voxels of ``apix`` Å centred (to a voxel) at the centroid of ``coords`` (N, 3)
    Å + ``shift`` (3,) Å."""
    box = tuple(int(b) for b in box)
    centre = np.asarray(coords, np.float64).mean(0) + np.asarray(shift, np.float64)
    corner = tuple(int(c) for c in np.round(centre / apix) - np.array(box) // 2)
    return Gridding(float(apix), box, corner, tuple(int(a) for a in axes), bool(use_start))


def random_gridding(extent: float, centre, rng: np.random.Generator, apix_range=APIX_RANGE, box_range=BOX_RANGE,
                    margin: float = 12.0) -> Gridding:
    """A cubic box as a user's map might have: voxel size uniform in ``apix_range`` Å, side uniform in
    ``box_range`` voxels (at least enough for ``extent`` + 2 ``margin`` Å), centred up to a quarter of the slack
    away from ``centre`` (3,) Å, random axis order and origin convention.

    extent: Å, the largest distance between any two atoms of every structure the map may show.
    """
    apix = float(rng.uniform(*apix_range))
    need = math.ceil((extent + 2 * margin) / apix)
    side = int(rng.integers(max(box_range[0], need), max(box_range[1], need) + 1))
    slack = side * apix - extent - 2 * margin  # Å the protein may move in the box and keep its margin
    shift = rng.uniform(-slack / 4, slack / 4, size=3)
    axes = tuple(int(a) for a in rng.permutation([1, 2, 3]))
    return gridding_around(np.asarray(centre, np.float64)[None], apix, (side,) * 3, shift, axes,
                           bool(rng.integers(2)))


def render_gridded(coords: np.ndarray, atomic_numbers: np.ndarray, gridding: Gridding,
                   resolution: float | None = None) -> np.ndarray:
    """``coords`` (N, 3) Å, map frame, rendered onto ``gridding``'s voxels: (X, Y, Z) float32.

    resolution: Å of the renderer's Gaussians (render.MapGrid); default max(CLEAN_RESOLUTION, 2 apix).
    """
    side = max(gridding.box)
    resolution = resolution or max(CLEAN_RESOLUTION, 2.0 * gridding.apix)
    grid = MapGrid(size=side, apix=gridding.apix, resolution=resolution)
    # The renderer's cube has voxel (0, 0, 0) at grid.origin; shift the atoms so that it is the box's corner.
    shift = np.array(grid.origin) - np.array(gridding.corner) * gridding.apix
    cube = render_density(torch.tensor(np.asarray(coords, np.float64) + shift)[None],
                          torch.tensor(np.asarray(atomic_numbers)), grid, check_bounds=False)[0].numpy()
    x, y, z = gridding.box
    return np.ascontiguousarray(cube[:x, :y, :z], dtype=np.float32)


def write_gridded(path: str | Path, volume: np.ndarray, gridding: Gridding) -> None:
    """Write ``volume`` (X, Y, Z) as a map file laid out as ``gridding`` says (gzip when the name ends .gz)."""
    corner = np.array(gridding.corner)
    if gridding.use_start:
        write_map_file(path, volume, gridding.apix, axes=gridding.axes, start=tuple(int(c) for c in corner))
    else:
        write_map_file(path, volume, gridding.apix, origin=tuple(corner * gridding.apix), axes=gridding.axes)


def path_population(n_frames: int, basins=BASINS) -> np.ndarray:
    """The population of each frame of a path of ``n_frames`` that ``basins`` give (Gaussians in the path
    position plus a uniform rest): (n_frames,) float64, summing to 1."""
    s = np.linspace(0.0, 1.0, n_frames)
    weights = np.full(n_frames, (1.0 - sum(w for *_, w in basins)) / n_frames)  # the uniform rest
    for centre, width, weight in basins:
        basin = np.exp(-0.5 * ((s - centre) / width) ** 2)
        weights += weight * basin / basin.sum()
    return weights / weights.sum()


def draw_frames(n_frames: int, n_maps: int, rng: np.random.Generator, basins=BASINS) -> np.ndarray:
    """``n_maps`` distinct frames of a path of ``n_frames``, drawn with probability ∝ :func:`path_population`:
    (n_maps,) int64, sorted. More maps fall where more particles would be, as with k-means volumes of a dataset."""
    if not 1 <= n_maps <= n_frames:
        raise ValueError(f"n_maps must be between 1 and the {n_frames} frames of the path, got {n_maps}")
    return np.sort(rng.choice(n_frames, size=n_maps, replace=False, p=path_population(n_frames, basins)))


def random_griddings(frames: np.ndarray, rng: np.random.Generator) -> list[Gridding]:
    """One :func:`random_gridding` per structure of ``frames`` (M, N, 3) Å, each box large enough for all of
    them (as a reconstruction's volumes share a box that holds every state)."""
    frames = np.asarray(frames, np.float64)
    centre = frames.reshape(-1, 3).mean(0)
    extent = 2.0 * float(np.linalg.norm(frames - centre, axis=-1).max())
    return [random_gridding(extent, centre, rng) for _ in frames]


def write_map_folder(folder: str | Path, frames: np.ndarray, atomic_numbers: np.ndarray,
                     griddings: list[Gridding], config: DegradeConfig, rng: np.random.Generator,
                     names: list[str] | None = None, suffixes=(".mrc",),
                     resolution: float | None = None) -> pd.DataFrame:
    """One map per structure of ``frames`` (M, N, 3) Å on its gridding (e.g. :func:`random_griddings`),
    rendered (:func:`render_gridded`) and degraded by ``config`` on that grid with noise from ``rng``, written
    to ``folder`` (created; refused if it exists, and left absent if anything fails).

    names: file stems (default vol_000 …); suffixes: cycled over the maps (e.g. ".mrc", ".map", ".mrc.gz");
    resolution: of the render before degradation (default :func:`render_gridded`'s).
    Returns one row per map: map (file name), apix, box, corner, axes, use_start.
    """
    frames = np.asarray(frames, np.float64)
    if len(griddings) != len(frames):
        raise ValueError(f"{len(griddings)} griddings for {len(frames)} structures; give one per structure")
    names = names or [f"vol_{k:03d}" for k in range(len(frames))]
    if len(names) != len(frames):
        raise ValueError(f"{len(names)} names for {len(frames)} structures; give one per structure")
    folder = Path(folder)
    if folder.exists():
        raise ValueError(f"{folder} exists; give a new folder for the maps (nothing is overwritten)")
    rows = []
    with staged_directory(folder, replace="*") as tmp:
        for k, (coords, gridding, name) in enumerate(zip(frames, griddings, names)):
            volume = degrade(render_gridded(coords, atomic_numbers, gridding, resolution), gridding.apix, config, rng)
            file = name + suffixes[k % len(suffixes)]
            write_gridded(tmp / file, volume, gridding)
            rows.append({"map": file, "apix": gridding.apix, "box": gridding.box[0], "corner": gridding.corner,
                         "axes": gridding.axes, "use_start": gridding.use_start})
    return pd.DataFrame(rows)


# Tables of notebook 07, and the names they rely on.

def fit_map_name(frame: int) -> str:
    """File stem of the read-out map of path frame ``frame`` ("frame_007"); :func:`fit_table` reads it back."""
    return f"frame_{frame:03d}"


def ingest_table(folder: str | Path, layout: pd.DataFrame, frames: np.ndarray, reference: Structure,
                 grid: MapGrid, centre: np.ndarray) -> pd.DataFrame:
    """Each map of ``folder`` read onto ``grid`` around ``centre`` (ingest.ingest_map, fit check included) and
    compared with its structure rendered straight onto ``grid``: one row per row of ``layout``.

    layout: :func:`write_map_folder`'s rows with a column frame (index into ``frames``) inserted; frames:
    (F, N, 3) Å in the maps' frame, in ``reference``'s atom order; centre: (3,) Å, the point ``grid`` is centred
    on. Columns: map, frame, apix (Å), box, axes, seconds (wall time of ingest_map), r_direct_render (Pearson r
    of the ingested map with the direct render), r_reference (the fit check's map–model correlation of the
    reference).
    """
    rows = []
    for row in layout.itertuples():
        tic = time.perf_counter()
        volume, correlation = ingest_map(Path(folder) / row.map, grid, reference.coords, reference.atomic_numbers,
                                         centre)
        seconds = time.perf_counter() - tic
        direct = render_density(torch.tensor(frames[row.frame] - centre)[None],
                                torch.tensor(reference.atomic_numbers), grid)[0].numpy()
        rows.append({"map": row.map, "frame": row.frame, "apix": row.apix, "box": row.box, "axes": row.axes,
                     "seconds": seconds, "r_direct_render": map_correlation(volume[None], direct[None])[0, 0],
                     "r_reference": correlation})
    return pd.DataFrame(rows)


INGEST_FOOTNOTE = ("The training structures rendered at 8 Å on each training map's grid, read and resampled onto "
                   "the model's 64³ × 2 Å grid (ingest.ingest_map, fit check included): seconds per map; "
                   "r_direct_render = Pearson r with the same structure rendered directly on that grid; "
                   "r_reference = the fit check's map–model correlation of the reference (1AKE).")


def sampling_scores(ensembles: dict[str, np.ndarray], states: dict[str, np.ndarray], training: np.ndarray,
                    train_seconds: dict[str, float], sample_seconds: dict[str, float]) -> pd.DataFrame:
    """Each model's ensemble scored against the two ends of the path: one row per entry of ``ensembles``.

    ensembles: training recipe → samples (S, N, 3) Å; states: {"closed": (N, 3), "open": (N, 3)} Å, the path's
    ends (heavy atoms, metrics.score_ensemble); training: (F, N, 3) Å, the structures of the training maps;
    *_seconds: recipe → wall time (s) of training and sampling. Columns: training, closest_closed and
    closest_open (Å, closest sample to each end), occupancy_closed (share of samples nearer the closed end),
    wasserstein_progress (Å, metrics.progress_wasserstein of the samples against the training structures along
    RMSD to closed − RMSD to open), train_seconds, sample_seconds.
    """
    ends = np.stack([states["closed"], states["open"]])
    population = score_ensemble(training, ends)
    rows = []
    for name, ensemble in ensembles.items():
        score = score_ensemble(ensemble, ends)
        summary = score.summary()
        rows.append({"training": name, "closest_closed": summary["closest_A"], "closest_open": summary["closest_B"],
                     "occupancy_closed": summary["occupancy_A"],
                     "wasserstein_progress": progress_wasserstein(score, population),
                     "train_seconds": train_seconds[name], "sample_seconds": sample_seconds[name]})
    return pd.DataFrame(rows)


def progress_table(ensembles: dict[str, np.ndarray], states: dict[str, np.ndarray], training: np.ndarray,
                   reference: np.ndarray) -> pd.DataFrame:
    """Where along the path each structure lies: one row per training structure, per sample of each ensemble
    and one for the rigid reference. Arguments as :func:`sampling_scores`; reference (N, 3) Å. Columns: source
    ("training maps", "reference" or the ensemble's recipe), index, progress (Å, RMSD to closed − RMSD to
    open: negative nearer the closed end; metrics.EnsembleScore.progress)."""
    ends = np.stack([states["closed"], states["open"]])
    parts = {"training maps": training, **ensembles, "reference": reference[None]}
    return pd.concat([pd.DataFrame({"source": name, "index": np.arange(len(coords)),
                                    "progress": score_ensemble(coords, ends).progress()})
                      for name, coords in parts.items()], ignore_index=True)


def fit_table(fit_dirs: dict[tuple[str, str], Path], reference: Structure, frames: np.ndarray,
              refined_dirs: dict[tuple[str, str], Path] | None = None) -> pd.DataFrame:
    """Single-map read-out scored against the truth: one row per map that ``cryosampler fit`` read, in the
    order of ``fit_dirs`` and of each fit.csv.

    fit_dirs: (training recipe, fit-map recipe) → the fit command's output folder (fit.csv and fitted models),
    run on maps named :func:`fit_map_name` of their path frame; frames: (F, N, 3) Å, the true structures, in
    ``reference``'s atom order; refined_dirs: the same for ``fit --refine`` runs on the same maps, for any subset
    of the keys. Columns: training, fit_maps, frame, rmsd_reference and rmsd_fitted (heavy-atom RMSD, Å, after
    superposition, of the reference and of the fitted model to the map's true structure), correlation_reference
    and correlation_fitted (fit.csv's map–model correlations); with ``refined_dirs`` also rmsd_refined and
    correlation_refined, NaN where a map was not refined.
    """

    def read(fit_dir: Path) -> dict[int, dict]:
        """frame → the fitted model's RMSD to it (Å) and fit.csv's correlations."""
        scores = {}
        for row in pd.read_csv(Path(fit_dir) / "fit.csv").itertuples():
            frame = int(Path(row.map).name.removeprefix("frame_").split(".")[0])  # fit_map_name's frame
            scores[frame] = {"rmsd": rmsd(read_ensemble(row.model, reference)[0], frames[frame]),
                             "fitted": row.correlation_fitted, "reference": row.correlation_reference}
        return scores

    rows = []
    for key, fit_dir in fit_dirs.items():
        refined = read(refined_dirs[key]) if refined_dirs and key in refined_dirs else {}
        for frame, fit in read(fit_dir).items():
            rows.append({"training": key[0], "fit_maps": key[1], "frame": frame,
                         "rmsd_reference": rmsd(reference.coords, frames[frame]), "rmsd_fitted": fit["rmsd"],
                         "correlation_reference": fit["reference"], "correlation_fitted": fit["fitted"]})
            if refined_dirs is not None:
                rows[-1]["rmsd_refined"] = refined[frame]["rmsd"] if frame in refined else np.nan
                rows[-1]["correlation_refined"] = refined[frame]["fitted"] if frame in refined else np.nan
    return pd.DataFrame(rows)


def own_maps_table(sampling: pd.DataFrame, fits: pd.DataFrame, static: dict[str, float],
                   training_occupancy: float, static_wasserstein: float) -> pd.DataFrame:
    """The results of notebook 07, per training recipe: sampling and read-out against the reference or truth.

    sampling: :func:`sampling_scores`; fits: :func:`fit_table`; static: {"closed": Å, "open": Å}, the rigid
    reference's RMSD to each end of the path; training_occupancy: the training maps' share nearer the closed end;
    static_wasserstein: the Wasserstein distance of the rigid reference alone to the training maps' (Å).
    Columns: training maps, measure, CryoSampler, reference or truth. Per recipe four rows: closest sample to
    each end (Å), occupancy of the closed half, the distribution along the path against the training maps' (1-D
    Wasserstein, Å); then per fit-map recipe two: the mean and largest fit RMSD (Å; the rigid reference's RMSD to
    the truth beside it), and two more for the refined fits where ``fits`` has any (over the refined maps).
    """

    def fit_rows(training: str, measure: str, group: pd.DataFrame, column: str) -> list[dict]:
        """The mean and largest of ``column`` over ``group``'s maps, the rigid reference's beside them; none if
        ``group`` is empty."""
        return [{"training maps": training, "measure": f"{measure}, {name} (Å)", "CryoSampler": how(group[column]),
                 "reference or truth": how(group["rmsd_reference"])}
                for name, how in (("mean", pd.Series.mean), ("largest", pd.Series.max))] if len(group) else []

    rows = []
    for r in sampling.itertuples():
        rows += [{"training maps": r.training, "measure": "closest sample to the closed end (Å)",
                  "CryoSampler": r.closest_closed, "reference or truth": static["closed"]},
                 {"training maps": r.training, "measure": "closest sample to the open end (Å)",
                  "CryoSampler": r.closest_open, "reference or truth": static["open"]},
                 {"training maps": r.training, "measure": "occupancy of the closed half",
                  "CryoSampler": r.occupancy_closed, "reference or truth": training_occupancy},
                 {"training maps": r.training, "measure": "Wasserstein to the training maps along the path (Å)",
                  "CryoSampler": r.wasserstein_progress, "reference or truth": static_wasserstein}]
        for maps_name, group in fits[fits["training"] == r.training].groupby("fit_maps", sort=False):
            rows += fit_rows(r.training, f"fit RMSD on {maps_name} maps", group, "rmsd_fitted")
            if "rmsd_refined" in group:  # over the maps that were refined, if any
                refined = group.dropna(subset=["rmsd_refined"])
                rows += fit_rows(r.training, f"refined fit RMSD on {maps_name} maps", refined, "rmsd_refined")
    return pd.DataFrame(rows)


def own_maps_footnote(n_maps: int, steps: int, encoder_preset: str, n_samples: int, seed: int,
                      n_fit_frames: int) -> str:
    """The footnote of :func:`own_maps_table`: ``n_maps`` training maps per folder, ``steps`` training steps
    with ``encoder_preset``, ``n_samples`` samples with ``seed``, read-out on ``n_fit_frames`` frames."""
    return (f"Adenylate kinase DIMS path (MDAnalysisTests 2.11.0), {n_maps} training maps per "
            f"folder on random grids, {steps} training steps ({encoder_preset} encoder), "
            f"{n_samples} samples (DDIM, the sample command's default steps), seed {seed}; fit on "
            f"{n_fit_frames} frames evenly along the path per resolution. 'reference or truth': the "
            "rigid reference (1AKE) for RMSDs, the training maps' share for occupancy. Heavy atoms.")


def validity_ensembles(ensembles: dict[str, np.ndarray], reference: Structure,
                       training: np.ndarray) -> list[tuple[dict, np.ndarray, Structure]]:
    """The input of validate.validity_table for notebook 07, every row judged against ``reference``: each model's
    ensemble (method "CryoSampler", training maps its recipe), the rigid reference (method "static reference")
    and the true structures of the training maps (method "path frames", shared by every folder).

    ensembles: training recipe → samples (S, N, 3) Å; training: (F, N, 3) Å, the training maps' structures;
    both in ``reference``'s atom order. Labels: method, training maps.
    """
    return ([({"method": "CryoSampler", "training maps": name}, samples, reference)
             for name, samples in ensembles.items()]
            + [({"method": "static reference", "training maps": "none"}, reference.coords[None], reference),
               ({"method": "path frames", "training maps": "all (their true structures)"}, training, reference)])


VALIDITY_FOOTNOTE = (_VALIDITY_BASICS + " Heavy atoms, every row judged against the reference (1AKE). 'path "
                     "frames': the DIMS path's structures drawn for the training maps, the data the models learn "
                     "from; 'static reference': 1AKE itself.")


# Issue 36: the methods notebook 07 sets side by side, and the weighting it asks the latent model for besides the
# maps' own populations.
METHODS = {"map": "map family (G = 2)", "latent": "latent family", "fits": "fit per map"}
OPEN_SHARE = 0.8  # the weight the unequal weighting puts on the maps nearer the open end
REWEIGHTED = "clean, 80 % weight on the open half"


def open_weights(training: np.ndarray, states: dict[str, np.ndarray], share: float = OPEN_SHARE) -> np.ndarray:
    """Weights (M,) that put ``share`` of the total on the training structures (M, N, 3) nearer the open end,
    shared equally among them, and the rest equally on those nearer the closed end (metrics.score_ensemble). When
    all lie in one half (a few maps, as the fast profile draws), the halves are those below and above the median
    place along the path (RMSD to closed − RMSD to open)."""
    score = score_ensemble(training, np.stack([states["closed"], states["open"]]))
    lower = score.rmsd.argmin(1) == 0
    if lower.all() or not lower.any():
        progress = score.progress()
        lower = progress <= np.median(progress)
        if lower.all():
            raise ValueError("the training structures all lie at one place along the path; no weighting can move "
                             "the populations")
    return np.where(lower, (1 - share) / lower.sum(), share / (~lower).sum())


def weighted_copies(coords: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """An ensemble of ``n`` structures in which each of ``coords`` (M, N, 3) appears in proportion to its weight
    (M,): counts by largest remainder, so the shares are exact to 1 / n. How a weighted set of fitted models (the
    fit-per-map baseline) or of true structures is scored as an ensemble."""
    share = np.asarray(weights, np.float64) / np.sum(weights) * n
    counts = np.floor(share).astype(int)
    counts[np.argsort(counts - share)[:n - counts.sum()]] += 1
    return np.repeat(coords, counts, axis=0)


def fitted_models(fit_dir: str | Path, reference: Structure, maps: list[str]) -> np.ndarray:
    """The models ``cryosampler fit`` wrote into ``fit_dir`` for ``maps`` (file names), in that order: (M, N, 3) Å."""
    table = pd.read_csv(Path(fit_dir) / "fit.csv")
    by_map = {Path(m).name: model for m, model in zip(table["map"], table["model"])}
    return np.stack([read_ensemble(by_map[name], reference)[0] for name in maps])


def families_table(scores: dict[str, pd.DataFrame], validity: dict[str, pd.DataFrame],
                   fits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Notebook 07's side-by-side table (issue 36): per training folder and measure, one column per method of
    :data:`METHODS` and one for the training maps themselves.

    scores: method key or "truth" → :func:`sampling_scores` (rows: training folder, "truth": the training maps'
    own structures, weighted as asked); validity: method key → validate.validity_table with a "training maps"
    column; fits: method key → :func:`fit_table`. A method missing for a folder is NaN.
    Columns: training maps, measure, then METHODS' labels, then "training maps' own".
    """
    measures = {"closest_closed": "closest sample to the closed end (Å)",
                "closest_open": "closest sample to the open end (Å)",
                "occupancy_closed": "occupancy of the closed half",
                "wasserstein_progress": "Wasserstein to the training maps along the path (Å)"}
    def value(table: pd.DataFrame | None, folder: str, column: str, key: str = "training") -> float:
        """``table``'s ``column`` in the row whose ``key`` is ``folder``; NaN if there is none."""
        if table is None or column not in table:
            return np.nan
        hit = table.loc[table[key] == folder, column]
        return float(hit.iloc[0]) if len(hit) else np.nan

    folders = list(dict.fromkeys(name for table in scores.values() for name in table["training"]))
    rows = []
    for folder in folders:
        cells = {column: {label: value(scores.get(key), folder, column) for key, label in METHODS.items()}
                 for column in measures}
        for column, measure in measures.items():
            rows.append({"training maps": folder, "measure": measure, **cells[column],
                         "training maps' own": value(scores.get("truth"), folder, column)})
        for column, measure in (("bioemu_pass", "BioEmu filter pass"), ("clashes_per_sample", "clashes per sample"),
                                ("bond_dev_rmsd", "bond-length deviation, rms (Å)")):
            rows.append({"training maps": folder, "measure": measure,
                         **{label: value(validity.get(key), folder, column, "training maps")
                            for key, label in METHODS.items()}, "training maps' own": np.nan})
        for maps_name in FIT_RECIPES:
            means = {}
            for key, label in METHODS.items():
                table = fits.get(key)
                hit = (table[(table["training"] == folder) & (table["fit_maps"] == maps_name)]
                       if table is not None else [])
                means[label] = float(hit["rmsd_fitted"].mean()) if len(hit) else np.nan
            rows.append({"training maps": folder, "measure": f"fit RMSD on {maps_name} maps, mean (Å)", **means,
                         "training maps' own": np.nan})
        for column, measure in (("train_seconds", "training time (s)"), ("sample_seconds", "sampling time (s)")):
            rows.append({"training maps": folder, "measure": measure,
                         **{label: value(scores.get(key), folder, column) for key, label in METHODS.items()},
                         "training maps' own": np.nan})
    return pd.DataFrame(rows)


def families_footnote(n_maps: int, map_steps: int, latent_steps: int, latent_preset: str, n_samples: int,
                      n_latent_samples: int, seed: int) -> str:
    """The footnote of :func:`families_table`."""
    return (f"Adenylate kinase DIMS path, {n_maps} training maps per folder (notebook 07). Map family: the command "
            f"line's map-space model (G = 2 mixture), {map_steps} steps, {n_samples} samples. Latent family: "
            f"`train --family latent`, preset {latent_preset}, {latent_steps} stage-1 steps, {n_latent_samples} "
            f"samples; '{REWEIGHTED}': the same stage 1 (`--stage1-from`), stage 2 with the weight column of the "
            f"maps CSV putting {OPEN_SHARE:.0%} on the maps nearer the open end. Fit per map: the map-family "
            "model's `fit` of every training map, each fitted model weighted as its map "
            f"({n_latent_samples} copies in proportion; its training time is the map family's, its sampling "
            "time that of the fits). 'training maps' own': the training maps' true structures, weighted as asked. "
            "Fit RMSDs: read-out without --refine of the 4 Å and 8 Å maps of the path frames (the fit-per-map "
            "column repeats the map family's read-out). BioEmu filter, clashes (< 2.2 Å) and bond-length "
            f"deviations from the reference: validate.py. Seed {seed}. Heavy atoms.")


def traverse_table(walks: dict[str, tuple[np.ndarray, pd.DataFrame]], states: dict[str, np.ndarray]) -> pd.DataFrame:
    """``cryosampler traverse``'s walks scored along the path: one row per frame of each walk.

    walks: label → (the walk's structures (F, N, 3) Å in the reference's atom order, its per-frame CSV); states: the
    path's ends as :func:`sampling_scores` takes them. Columns: walk, frame, progress (Å, RMSD to closed − RMSD to
    open, metrics.EnsembleScore.progress), rmsd_closed, rmsd_open (Å), clashes, chain_breaks, bioemu_physical (the
    CSV's validity).
    """
    ends = np.stack([states["closed"], states["open"]])
    parts = []
    for label, (coords, table) in walks.items():
        score = score_ensemble(coords, ends)
        parts.append(pd.DataFrame({"walk": label, "frame": table["frame"], "progress": score.progress(),
                                   "rmsd_closed": score.rmsd[:, 0], "rmsd_open": score.rmsd[:, 1],
                                   "clashes": table["clashes"], "chain_breaks": table["chain_breaks"],
                                   "bioemu_physical": table["bioemu_physical"]}))
    return pd.concat(parts, ignore_index=True)


TRAVERSE_FOOTNOTE = ("`cryosampler traverse` of the latent model trained on the clean maps: along the first principal "
                     "component of the training maps' latents, and on the straight line between the latents of the "
                     "training maps nearest each end of the path (by the progress coordinate). Progress: heavy-atom "
                     "RMSD to the closed end − RMSD to the open end. Validity: validate.py, against the reference.")
