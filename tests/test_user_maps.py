"""Maps as users have them: random gridding, degradation, unequal populations, written and ingested back."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import make_helix
from cryosampler.physics.degrade import DegradeConfig, signal_mask
from cryosampler.ingest import ingest_map
from cryosampler.physics.correlation import map_correlation
from cryosampler.io.mrc import read_mrc
from cryosampler.physics.render import render_density
from cryosampler.io.grid import MapGrid
from cryosampler.experiments import user_maps
from cryosampler.experiments.user_maps import (APIX_RANGE, BOX_RANGE, draw_frames, fit_map_name, fit_table,
                                               gridding_around, ingest_table, own_maps_footnote, own_maps_table,
                                               progress_table, random_gridding, random_griddings, render_gridded,
                                               sampling_scores, write_map_folder)
from cryosampler.evaluation.metrics import progress_wasserstein, score_ensemble
from cryosampler.evaluation.validate import validity_table
from cryosampler.io.atomic_files import read_structure, write_pdb
from cryosampler.physics.superpose import rmsd

MODEL_GRID = MapGrid(size=64, apix=2.0, resolution=8.0)


def helix_path(n_frames=6):
    """A helix in a map frame far from the origin, bending a little more in every frame: (F, N, 3) Å."""
    helix = make_helix(12)
    bend = np.linspace(0.0, 3.0, n_frames)[:, None, None] * (helix.coords[:, 2:3] / 10.0) ** 2 * [1.0, 0.0, 0.0]
    return helix, helix.coords[None] + bend + [120.0, 85.5, 140.25]


def test_random_gridding_is_within_the_ranges_and_holds_the_protein():
    rng = np.random.default_rng(0)
    centre = np.array([120.0, 85.5, 140.25])
    for _ in range(50):
        g = random_gridding(60.0, centre, rng)
        assert APIX_RANGE[0] <= g.apix <= APIX_RANGE[1]
        assert len(set(g.box)) == 1 and g.box[0] >= BOX_RANGE[0]
        assert g.box[0] <= BOX_RANGE[1] or g.box[0] * g.apix < 60.0 + 24.0 + g.apix  # larger only when needed
        assert sorted(g.axes) == [1, 2, 3]
        low = np.array(g.corner) * g.apix
        high = low + (np.array(g.box) - 1) * g.apix
        assert np.all(low < centre - 30.0 - 12.0 + g.apix) and np.all(high > centre + 30.0 + 12.0 - 2 * g.apix)
    large = random_gridding(300.0, centre, np.random.default_rng(1), apix_range=(1.0, 1.0))
    assert large.box[0] * large.apix >= 300.0 + 24.0 and large.box[0] > BOX_RANGE[1]  # larger where needed
    again = random_gridding(60.0, centre, np.random.default_rng(0))
    assert again == random_gridding(60.0, centre, np.random.default_rng(0))


def test_render_gridded_puts_voxels_where_the_gridding_says():
    helix, _ = helix_path()
    coords = helix.coords + [50.0, -20.0, 7.0]
    g = gridding_around(coords, 1.5, (40, 44, 48), shift=(3.0, -2.0, 1.0))
    volume = render_gridded(coords, helix.atomic_numbers, g, resolution=6.0)
    assert volume.shape == (40, 44, 48)
    weights = volume / volume.sum()
    index = np.indices(volume.shape).reshape(3, -1).T
    centre_of_density = ((np.array(g.corner) + index) * g.apix * weights.reshape(-1, 1)).sum(0)
    centroid = (coords * helix.atomic_numbers[:, None]).sum(0) / helix.atomic_numbers.sum()
    np.testing.assert_allclose(centre_of_density, centroid, atol=0.05)


def test_a_written_folder_ingests_to_the_direct_render(tmp_path):
    helix, frames = helix_path(4)
    griddings = random_griddings(frames, np.random.default_rng(1))
    table = write_map_folder(tmp_path / "maps", frames, helix.atomic_numbers, griddings, DegradeConfig(),
                             np.random.default_rng(1), suffixes=(".mrc", ".map", ".mrc.gz"), resolution=8.0)
    assert list(table["map"]) == ["vol_000.mrc", "vol_001.map", "vol_002.mrc.gz", "vol_003.mrc"]
    assert table["apix"].nunique() == 4 and table["axes"].nunique() > 1
    for row, coords in zip(table.itertuples(), frames):
        path = tmp_path / "maps" / row.map
        assert read_mrc(path)[0].shape == (row.box,) * 3
        centre = frames[0].mean(0)  # the reference's centroid: every map is ingested around it
        volume, _ = ingest_map(path, MODEL_GRID, frames[0], helix.atomic_numbers, centre, probes=False)
        direct = render_density(torch.tensor(coords - centre)[None], torch.tensor(helix.atomic_numbers),
                                MODEL_GRID)[0].numpy()
        assert map_correlation(volume[None], direct[None])[0, 0] >= 0.99, row


def test_degraded_folder_has_the_stated_noise(tmp_path):
    helix, frames = helix_path(2)
    griddings = random_griddings(frames, np.random.default_rng(3))
    write_map_folder(tmp_path / "clean", frames, helix.atomic_numbers, griddings, DegradeConfig(),
                     np.random.default_rng(3))
    write_map_folder(tmp_path / "noisy", frames, helix.atomic_numbers, griddings, DegradeConfig(snr=0.3),
                     np.random.default_rng(3))
    a, b = (read_mrc(tmp_path / d / "vol_000.mrc")[0] for d in ("clean", "noisy"))
    mask = signal_mask(a)  # degrade's own mask: SNR is measured inside it
    assert (b - a).var() == pytest.approx(a[mask].var() / 0.3, rel=0.05)


def test_an_existing_folder_is_refused_and_a_failure_leaves_none(tmp_path):
    helix, frames = helix_path(2)
    griddings = random_griddings(frames, np.random.default_rng(0))
    (tmp_path / "maps").mkdir()
    with pytest.raises(ValueError, match=r"maps exists; give a new folder"):
        write_map_folder(tmp_path / "maps", frames, helix.atomic_numbers, griddings, DegradeConfig(),
                         np.random.default_rng(0))
    with pytest.raises(ValueError, match="1 names for 2 structures"):
        write_map_folder(tmp_path / "new", frames, helix.atomic_numbers, griddings, DegradeConfig(),
                         np.random.default_rng(0), names=["only"])
    with pytest.raises(ValueError, match="2 griddings for 1 structures"):
        write_map_folder(tmp_path / "new", frames[:1], helix.atomic_numbers, griddings, DegradeConfig(),
                         np.random.default_rng(0))
    with pytest.raises(ValueError):  # a NaN structure fails while rendering the second map
        write_map_folder(tmp_path / "new", np.stack([frames[0], frames[1] * np.nan]), helix.atomic_numbers,
                         griddings, DegradeConfig(), np.random.default_rng(0))
    assert not (tmp_path / "new").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["maps"]


def test_draw_frames_follows_the_populations():
    rng = np.random.default_rng(0)
    draws = np.concatenate([draw_frames(98, 20, rng) for _ in range(200)])
    start, end, middle = np.mean(draws < 25), np.mean(draws > 72), np.mean((draws >= 25) & (draws <= 72))
    assert start > end > middle  # start basin 0.6, end basin 0.3, the rest spread thin
    # Drawing a tenth of all frames at once barely flattens the populations: one frame at a time, exactly.
    singles = np.concatenate([draw_frames(98, 1, rng) for _ in range(4000)])
    assert np.mean(singles < 25) == pytest.approx(0.6 + 0.1 * 25 / 98, abs=0.03)
    assert np.mean(singles > 72) == pytest.approx(0.3 + 0.1 * 25 / 98, abs=0.03)
    one = draw_frames(98, 20, np.random.default_rng(5))
    assert len(np.unique(one)) == 20 and np.all(np.diff(one) > 0)
    with pytest.raises(ValueError, match="n_maps must be between 1 and the 98 frames"):
        draw_frames(98, 99, rng)


def test_ingest_table_matches_each_map_to_its_direct_render(tmp_path):
    helix, frames = helix_path(3)
    griddings = random_griddings(frames, np.random.default_rng(2))
    layout = write_map_folder(tmp_path / "maps", frames[[2, 0]], helix.atomic_numbers, griddings[:2], DegradeConfig(),
                              np.random.default_rng(2), resolution=8.0)
    layout.insert(1, "frame", [2, 0])
    reference = dataclasses.replace(helix, coords=frames[0])
    table = ingest_table(tmp_path / "maps", layout, frames, reference, MODEL_GRID, frames[0].mean(0))
    assert list(table.columns) == ["map", "frame", "apix", "box", "axes", "seconds", "r_direct_render",
                                   "r_reference"]
    assert list(table["map"]) == ["vol_000.mrc", "vol_001.mrc"] and list(table["frame"]) == [2, 0]
    assert np.all(table["r_direct_render"] >= 0.99) and np.all(table["seconds"] > 0)
    assert table["r_reference"].iloc[1] > 0.9  # the map of the reference's own frame
    # Mismatched frames show: the map of frame 2 against the render of frame 0 correlates less.
    swapped = ingest_table(tmp_path / "maps", layout.assign(frame=[0, 2]), frames, reference, MODEL_GRID,
                           frames[0].mean(0))
    assert np.all(swapped["r_direct_render"] < table["r_direct_render"])


def test_sampling_scores_by_hand():
    _, frames = helix_path(6)
    states = {"closed": frames[0], "open": frames[-1]}
    training = np.stack([frames[0], frames[1], frames[-1]])
    table = sampling_scores({"clean": training, "noisy": frames[[1, 2]]}, states, training,
                            {"clean": 10.0, "noisy": 11.0}, {"clean": 1.0, "noisy": 2.0})
    assert list(table.columns) == ["training", "closest_closed", "closest_open", "occupancy_closed",
                                   "wasserstein_progress", "train_seconds", "sample_seconds"]
    clean, noisy = table.iloc[0], table.iloc[1]
    assert clean["closest_closed"] == pytest.approx(0.0, abs=1e-6)
    assert clean["closest_open"] == pytest.approx(0.0, abs=1e-6)
    assert clean["occupancy_closed"] == pytest.approx(2 / 3) and noisy["occupancy_closed"] == pytest.approx(1.0)
    assert noisy["closest_closed"] == pytest.approx(rmsd(frames[1], frames[0])) and noisy["closest_closed"] > 0
    assert (noisy["train_seconds"], noisy["sample_seconds"]) == (11.0, 2.0)
    # The same structures as the training maps: no distance along the path; others: a positive one.
    assert clean["wasserstein_progress"] == pytest.approx(0.0, abs=1e-9) and noisy["wasserstein_progress"] > 0.1


def test_progress_places_each_structure_between_the_ends():
    _, frames = helix_path(6)
    states = {"closed": frames[0], "open": frames[-1]}
    table = progress_table({"ours": frames[[0, 5]]}, states, frames[[0, 1, 2]], frames[0])
    assert list(table["source"]) == ["training maps"] * 3 + ["ours"] * 2 + ["reference"]
    d = rmsd(frames[0], frames[-1])
    ours = table[table["source"] == "ours"]["progress"].to_numpy()
    assert ours == pytest.approx([-d, d], abs=1e-6)  # the ends sit at ∓ d(closed, open)
    training = table[table["source"] == "training maps"]["progress"].to_numpy()
    assert np.all(np.diff(training) > 0)  # frames along the path move towards the open end
    ends = np.stack([frames[0], frames[-1]])
    # The 1-D Wasserstein distance of two point masses is their distance along the coordinate.
    assert progress_wasserstein(score_ensemble(frames[[0]], ends), score_ensemble(frames[[5]], ends)) == \
        pytest.approx(2 * d, abs=1e-6)


def test_fit_table_scores_each_map_against_its_frame(tmp_path):
    helix, frames = helix_path(6)
    write_pdb(tmp_path / "reference.pdb", helix, frames[0])
    reference = read_structure(tmp_path / "reference.pdb")
    write_pdb(tmp_path / "fit_a.pdb", reference, frames[4])
    write_pdb(tmp_path / "fit_b.pdb", reference, frames[0])
    assert fit_map_name(4) == "frame_004"
    pd.DataFrame({"map": [f"maps/{fit_map_name(4)}.mrc.gz", f"maps/{fit_map_name(5)}.mrc"],
                  "model": [str(tmp_path / "fit_a.pdb"), str(tmp_path / "fit_b.pdb")],
                  "correlation_reference": [0.5, 0.6], "correlation_fitted": [0.9, 0.8]}).to_csv(
        tmp_path / "fit.csv", index=False)
    table = fit_table({("clean", "4 Å"): tmp_path, ("noisy", "4 Å"): tmp_path}, reference, frames)
    assert list(table["training"]) == ["clean", "clean", "noisy", "noisy"] and list(table["frame"]) == [4, 5] * 2
    assert table["rmsd_fitted"].iloc[0] == pytest.approx(0.0, abs=2e-3)  # the fitted model is its frame
    assert table["rmsd_fitted"].iloc[1] == pytest.approx(rmsd(frames[0], frames[5]), abs=2e-3)
    assert table["rmsd_fitted"].iloc[1] > 0.1
    assert table["rmsd_reference"].iloc[1] == pytest.approx(rmsd(reference.coords, frames[5]))
    assert list(table["correlation_fitted"]) == [0.9, 0.8] * 2
    assert "rmsd_refined" not in table
    # The clean model's fits refined, and frame 5's refinement returned its own frame: the noisy model's rows and
    # the read-out columns are left as they were.
    refined = tmp_path / "refined"
    refined.mkdir()
    write_pdb(refined / "fit_b.pdb", reference, frames[5])
    pd.DataFrame({"map": [f"maps/{fit_map_name(5)}.mrc"], "model": [str(refined / "fit_b.pdb")],
                  "correlation_reference": [0.6], "correlation_fitted": [0.97]}).to_csv(refined / "fit.csv", index=False)
    table = fit_table({("clean", "4 Å"): tmp_path, ("noisy", "4 Å"): tmp_path}, reference, frames,
                      refined_dirs={("clean", "4 Å"): refined})
    assert np.isnan(table["rmsd_refined"].iloc[[0, 2, 3]]).all()
    assert table["rmsd_refined"].iloc[1] == pytest.approx(0.0, abs=2e-3) and table["correlation_refined"].iloc[1] == 0.97
    assert table["rmsd_fitted"].iloc[1] == pytest.approx(rmsd(frames[0], frames[5]), abs=2e-3)


def test_own_maps_table_by_hand():
    sampling = pd.DataFrame({"training": ["clean", "noisy"], "closest_closed": [1.0, 2.0],
                             "closest_open": [3.0, 4.0], "occupancy_closed": [0.6, 0.7],
                             "wasserstein_progress": [0.4, 0.9]})
    fits = pd.DataFrame({"training": ["clean"] * 3 + ["noisy"] * 3, "fit_maps": ["4 Å", "4 Å", "8 Å"] * 2,
                         "rmsd_fitted": [1.0, 3.0, 5.0, 2.0, 4.0, 6.0], "rmsd_reference": [2.0, 4.0, 6.0] * 2})
    table = own_maps_table(sampling, fits, {"closed": 0.5, "open": 7.0}, training_occupancy=0.67,
                           static_wasserstein=2.5)
    assert list(table.columns) == ["training maps", "measure", "CryoSampler", "reference or truth"]
    assert len(table) == 2 * (4 + 2 * 2) and list(table["training maps"]) == ["clean"] * 8 + ["noisy"] * 8
    clean = table[table["training maps"] == "clean"].set_index("measure")[["CryoSampler", "reference or truth"]]
    assert clean.loc["closest sample to the open end (Å)"].tolist() == [3.0, 7.0]
    assert clean.loc["occupancy of the closed half"].tolist() == [0.6, 0.67]
    assert clean.loc["Wasserstein to the training maps along the path (Å)"].tolist() == [0.4, 2.5]
    assert clean.loc["fit RMSD on 4 Å maps, mean (Å)"].tolist() == [2.0, 3.0]
    assert clean.loc["fit RMSD on 4 Å maps, largest (Å)"].tolist() == [3.0, 4.0]
    assert clean.loc["fit RMSD on 8 Å maps, mean (Å)"].tolist() == [5.0, 6.0]
    assert "20 training maps per folder" in own_maps_footnote(20, 100, "smoke", 16, 0, 5)
    assert not table["measure"].str.startswith("refined").any()
    # Refined fits of the clean model's 4 Å maps only (one not refined): two more rows for that recipe alone.
    fits["rmsd_refined"] = [0.5, np.nan, np.nan, np.nan, np.nan, np.nan]
    table = own_maps_table(sampling, fits, {"closed": 0.5, "open": 7.0}, training_occupancy=0.67,
                           static_wasserstein=2.5)
    assert len(table) == 2 * (4 + 2 * 2) + 2
    clean = table[table["training maps"] == "clean"].set_index("measure")[["CryoSampler", "reference or truth"]]
    assert clean.loc["refined fit RMSD on 4 Å maps, mean (Å)"].tolist() == [0.5, 2.0]
    assert clean.loc["refined fit RMSD on 4 Å maps, largest (Å)"].tolist() == [0.5, 2.0]
    assert clean.loc["fit RMSD on 4 Å maps, mean (Å)"].tolist() == [2.0, 3.0]


def test_validity_rows_are_each_model_the_reference_and_the_training_structures():
    reference = make_helix()
    broken = reference.coords.copy()
    broken[reference.res_nums > 5] += [0.0, 0.0, 3.0]  # CA 5 → CA 6 stretched by about 3 Å: a chain break
    training = np.stack([reference.coords, reference.coords + 0.01])
    table = validity_table(user_maps.validity_ensembles({"clean": np.stack([reference.coords, broken]),
                                               "6 Å": reference.coords[None]}, reference, training))
    assert list(table["method"]) == ["CryoSampler", "CryoSampler", "static reference", "path frames"]
    assert list(table["training maps"][:2]) == ["clean", "6 Å"]
    assert list(table["samples"]) == [2, 1, 1, 2]
    assert list(table["chain_breaks_per_sample"]) == [0.5, 0, 0, 0]
    assert table["bond_dev_max"].iloc[3] == pytest.approx(0.0, abs=1e-9)  # a rigid shift keeps every bond
    assert "path frames" in user_maps.VALIDITY_FOOTNOTE


def test_open_weights_put_the_share_on_the_open_half_and_fall_back_to_the_median():
    _, frames = helix_path(6)
    states = {"closed": frames[0], "open": frames[-1]}
    weights = user_maps.open_weights(frames[[0, 1, 4, 5]], states, share=0.8)
    assert weights == pytest.approx([0.1, 0.1, 0.4, 0.4])
    # All nearer the closed end: the halves are below and above the median place along the path.
    weights = user_maps.open_weights(frames[[0, 1, 2]], states, share=0.8)
    assert weights.sum() == pytest.approx(1.0) and weights[2] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="all lie at one place"):
        user_maps.open_weights(frames[[1, 1]], states)


def test_weighted_copies_give_each_structure_its_share_to_one_in_n():
    coords = np.arange(3 * 2 * 3, dtype=float).reshape(3, 2, 3)
    copies = user_maps.weighted_copies(coords, np.array([0.5, 0.3, 0.2]), 10)
    assert len(copies) == 10
    counts = [int((copies == c).all(axis=(1, 2)).sum()) for c in coords]
    assert counts == [5, 3, 2]
    assert len(user_maps.weighted_copies(coords, np.array([1.0, 1.0, 1.0]), 100)) == 100


def test_families_table_sets_each_method_beside_the_training_maps():
    _, frames = helix_path(6)
    states = {"closed": frames[0], "open": frames[-1]}
    training = frames[[0, 1, 5]]
    one = {"clean": 10.0}
    scores = {"map": sampling_scores({"clean": frames[[0, 0]]}, states, training, one, one),
              "latent": sampling_scores({"clean": training}, states, training, one, one),
              "truth": sampling_scores({"clean": training}, states, training, one, one)}
    helix, _ = helix_path(6)
    validity = {"latent": validity_table([({"training maps": "clean"}, training, helix)])}
    fits = {"latent": pd.DataFrame({"training": ["clean"] * 2, "fit_maps": ["4 Å", "8 Å"], "rmsd_fitted": [1.0, 2.0]})}
    table = user_maps.families_table(scores, validity, fits)
    assert list(table.columns) == ["training maps", "measure", *user_maps.METHODS.values(), "training maps' own"]
    rows = table.set_index("measure")
    map_family, latent = user_maps.METHODS["map"], user_maps.METHODS["latent"]
    assert rows.loc["occupancy of the closed half", map_family] == 1.0
    assert rows.loc["occupancy of the closed half", latent] == pytest.approx(2 / 3)
    assert rows.loc["occupancy of the closed half", "training maps' own"] == pytest.approx(2 / 3)
    assert rows.loc["Wasserstein to the training maps along the path (Å)", latent] == pytest.approx(0.0, abs=1e-9)
    assert rows.loc["fit RMSD on 8 Å maps, mean (Å)", latent] == 2.0
    assert np.isnan(rows.loc["fit RMSD on 8 Å maps, mean (Å)", map_family])  # no fits given for it
    assert np.isnan(rows.loc["BioEmu filter pass", user_maps.METHODS["fits"]])  # a method not run is NaN


def test_traverse_table_places_each_frame_along_the_path():
    _, frames = helix_path(6)
    states = {"closed": frames[0], "open": frames[-1]}
    csv = pd.DataFrame({"frame": [1, 2], "clashes": [0, 1], "chain_breaks": [0, 0], "bioemu_physical": [True, False]})
    table = user_maps.traverse_table({"walk": (frames[[0, 5]], csv)}, states)
    d = rmsd(frames[0], frames[-1])
    assert table["progress"].to_numpy() == pytest.approx([-d, d], abs=1e-6)
    assert list(table["clashes"]) == [0, 1] and list(table["walk"]) == ["walk", "walk"]
