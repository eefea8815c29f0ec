"""Notebook 08's scoring against the truth: what each cryoDRGN class holds (its particles' frames), how close its map
is to the average of those particles' densities, and how far CryoSampler's read-out and ensemble are from it.

A class's true *mean structure* is the mean of its particles' frames (every frame of the path is superposed on the
first by the CORE domain, so the mean is taken in that frame); its true *average map* is the particle-weighted mean
of its frames' densities, rendered on the class map's grid at the grid's Nyquist resolution (2 voxels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cryosampler.experiments.user_maps import Gridding, render_gridded, sampling_scores
from cryosampler.io.mrc import read_mrc
from cryosampler.physics.correlation import map_correlation
from cryosampler.physics.superpose import rmsd

__all__ = ["class_means", "class_positions", "class_map_correlations", "class_readout_table", "population_table",
           "CLASS_FOOTNOTE", "POPULATION_FOOTNOTE"]


def class_means(frame_lists: list[np.ndarray], frames: np.ndarray) -> np.ndarray:
    """Each class's true mean structure: the mean of ``frames`` (F, N, 3) Å over each list of particle frames
    (one (n,) int array per class); (M, N, 3) Å."""
    return np.stack([frames[np.asarray(f)].mean(0) for f in frame_lists])


def class_positions(frame_lists: list[np.ndarray], n_frames: int) -> np.ndarray:
    """Mean position along the path (0 = closed end, 1 = open end) of each class's particles: (M,)."""
    return np.array([np.mean(f) / (n_frames - 1) for f in frame_lists])


def class_map_correlations(folder: str | Path, maps: list[str], frame_lists: list[np.ndarray], frames: np.ndarray,
                           atomic_numbers: np.ndarray) -> np.ndarray:
    """Pearson r of each class map (file names ``maps`` in ``folder``) with its true average map (module
    docstring); ``frames`` (F, N, 3) Å in the maps' frame. (M,)."""
    scores = []
    for name, frame_list in zip(maps, frame_lists):
        volume, apix, origin = read_mrc(Path(folder) / name)
        corner = tuple(int(round(o / apix)) for o in origin)
        gridding = Gridding(apix, volume.shape, corner)
        used, counts = np.unique(np.asarray(frame_list), return_counts=True)
        average = sum(c * render_gridded(frames[f], atomic_numbers, gridding, resolution=2 * apix)
                      for f, c in zip(used, counts)) / counts.sum()
        scores.append(float(map_correlation(volume[None], average[None])[0, 0]))
    return np.array(scores)


CLASS_FOOTNOTE = ("One row per cryoDRGN k-means class map. particles: the class's size (its weight in training); "
                  "position: mean place of its particles along the path (0 closed, 1 open); r_true_average: Pearson "
                  "r of the class map with the particle-weighted average density of its particles' frames on the "
                  "same grid (what cryoDRGN loses); rmsd_*: heavy-atom RMSD (Å) to the class's true mean structure "
                  "of the reference (1AKE), of `cryosampler fit --refine` on the class map, and of the same fit on "
                  "a clean 4 Å map of the true mean structure (what CryoSampler loses on top).")
POPULATION_FOOTNOTE = ("Populations along the path. truth: the simulated particles; classes: each class's true mean "
                       "structure, weighted by its particle count (what the class maps hold at best); fit per class "
                       "map: `fit --refine` models weighted by particle count; latent: `cryosampler sample` of a "
                       "latent-family model trained on the class maps with their particle counts as weights, and the "
                       "same on clean maps of the classes' true mean structures. occupancy_closed: share nearer the "
                       "closed end (heavy-atom RMSD, metrics.score_ensemble); closest_*: Å; wasserstein_progress: Å, "
                       "1-D W1 along RMSD(closed) − RMSD(open) against the particles' true frames.")


def class_readout_table(classes: pd.DataFrame, means: np.ndarray, fitted: dict[str, np.ndarray],
                        reference: np.ndarray) -> pd.DataFrame:
    """One row per class: map, particles, position, r_true_average (columns of ``classes``), rmsd_reference and
    one ``rmsd_<key>`` per entry of ``fitted`` (Å, heavy atoms, after superposition, to the class's true mean).

    means: (M, N, 3) Å, :func:`class_means`; fitted: key → (M, N, 3) Å, one model per class in ``classes``' order;
    reference: (N, 3) Å.
    """
    table = classes[["map", "particles", "position", "r_true_average"]].copy()
    table["rmsd_reference"] = [rmsd(reference, m) for m in means]
    for key, models in fitted.items():
        table[f"rmsd_{key}"] = [rmsd(x, m) for x, m in zip(models, means)]
    return table


def population_table(ensembles: dict[str, np.ndarray], states: dict[str, np.ndarray], truth: np.ndarray,
                     validity: pd.DataFrame, train_seconds: dict[str, float],
                     sample_seconds: dict[str, float]) -> pd.DataFrame:
    """One row per ensemble (name → (S, N, 3) Å): user_maps.sampling_scores against the particles' true
    structures ``truth`` (B, N, 3) Å, with the number of structures and, where ``validity`` has a row for it
    (validate.validity_table with a column ensemble), the BioEmu pass rate and clashes per structure."""
    scores = sampling_scores(ensembles, states, truth, train_seconds, sample_seconds).rename(
        columns={"training": "ensemble"})
    scores.insert(1, "structures", [len(v) for v in ensembles.values()])
    return scores.merge(validity[["ensemble", "bioemu_pass", "clashes_per_sample"]], on="ensemble", how="left")
