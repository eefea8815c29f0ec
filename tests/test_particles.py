"""Particle simulation: CTF, projection, RELION STAR files, the known-truth dataset and its scoring (issue 33)."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from cryosampler.experiments.particle_truth import class_map_correlations, class_means, class_positions
from cryosampler.experiments.particles import (BASINS_70_30, PARTICLE_PRESETS, ParticleConfig, map_frame_offset,
                                               particle_dataset, simulate_particles, write_dataset)
from cryosampler.experiments.user_maps import Gridding, path_population, render_gridded, write_gridded
from cryosampler.io.grid import MapGrid
from cryosampler.io.mrc import read_image_stack
from cryosampler.io.particles import Optics, read_particles_star, relion_eulers, rotations_from_relion
from cryosampler.physics.ctf import apply_ctf, ctf_2d, electron_wavelength, frequency_grid
from cryosampler.physics.projection import project_atoms, random_rotations
from cryosampler.physics.render import render_density


def test_wavelength_at_300_kv():
    assert electron_wavelength(300.0) == pytest.approx(0.019687, abs=1e-6)  # Å, the textbook value


def test_ctf_is_minus_amplitude_contrast_at_zero_frequency_and_zero_at_the_first_thon_ring():
    freqs = frequency_grid(64, 2.0)
    ctf = ctf_2d(freqs, [15000.0], [15000.0], [0.0], 300.0, 2.7, 0.1)
    assert ctf.shape == (1, 64, 64) and ctf[0, 0, 0] == pytest.approx(-0.1)
    # Without spherical aberration or amplitude contrast, CTF = sin(-π Δf λ s²): the first zero at s² = 1/(Δf λ).
    s = math.sqrt(1.0 / (15000.0 * electron_wavelength(300.0)))
    at = np.array([[s / math.sqrt(2), s / math.sqrt(2)], [s / 2, 0.0]])
    values = ctf_2d(at, [15000.0], [15000.0], [0.0], 300.0, 0.0, 0.0)[0]
    assert values[0] == pytest.approx(0.0, abs=1e-9) and values[1] < -0.5


def test_astigmatism_follows_the_defocus_angle():
    freqs = np.array([[0.05, 0.0], [0.0, 0.05]])  # along x, along y
    along_x = ctf_2d(freqs, [20000.0], [10000.0], [0.0], 300.0, 2.7, 0.1)[0]
    along_y = ctf_2d(freqs, [20000.0], [10000.0], [90.0], 300.0, 2.7, 0.1)[0]
    np.testing.assert_allclose(along_x, along_y[::-1])
    assert not np.isclose(along_x[0], along_x[1])


def test_ctf_matches_cryodrgn():
    ctf_module = pytest.importorskip("cryodrgn.ctf")
    freqs = frequency_grid(32, 1.5).reshape(-1, 2)
    ours = ctf_2d(freqs, [12000.0], [11000.0], [33.0], 300.0, 2.7, 0.07, phase_shift=10.0)[0]
    theirs = ctf_module.compute_ctf(torch.tensor(freqs), torch.tensor(12000.0), torch.tensor(11000.0),
                                    torch.tensor(33.0), torch.tensor(300.0), torch.tensor(2.7), torch.tensor(0.07),
                                    torch.tensor(10.0)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_apply_ctf_of_one_is_the_identity_and_keeps_the_centre():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 16, 16))
    np.testing.assert_allclose(apply_ctf(images, np.ones((2, 16, 16))), images, atol=1e-12)
    point = np.zeros((1, 16, 16))
    point[0, 8, 8] = 1.0
    blurred = apply_ctf(point, np.exp(-np.sum(frequency_grid(16, 1.0) ** 2, -1) * 20)[None])
    assert np.unravel_index(blurred[0].argmax(), (16, 16)) == (8, 8)


def test_projection_is_the_rendered_map_summed_along_z():
    rng = np.random.default_rng(1)
    coords = rng.uniform(-12, 12, size=(30, 3))
    weights = rng.integers(6, 9, size=30)
    grid = MapGrid(size=32, apix=1.5, resolution=4.0)
    volume = render_density(torch.tensor(coords)[None], torch.tensor(weights), grid)[0].numpy()  # (x, y, z)
    expected = volume.sum(axis=2).T * grid.apix  # [y, x]
    image = project_atoms(coords[None], weights, np.eye(3)[None], 32, 1.5, 4.0)[0]
    # The z sum is a Riemann sum of the Gaussian the projection integrates exactly: equal to within 0.5 %.
    np.testing.assert_allclose(image, expected, rtol=5e-3, atol=1e-3 * expected.max())


def test_a_rotated_projection_is_the_projection_of_the_rotated_atoms():
    rng = np.random.default_rng(2)
    coords = rng.uniform(-10, 10, size=(20, 3))
    rotation = random_rotations(1, rng)
    a = project_atoms(coords[None], np.ones(20), rotation, 24, 2.0, 5.0)
    b = project_atoms((coords @ rotation[0].T)[None], np.ones(20), np.eye(3)[None], 24, 2.0, 5.0)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_random_rotations_are_rotations_spread_over_so3():
    r = random_rotations(2000, np.random.default_rng(3))
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    # Uniform over SO(3): each column is uniform on the sphere, so its mean is near zero.
    assert np.abs(r.mean(0)).max() < 0.05


def test_relion_eulers_round_trip_and_agree_with_cryodrgn():
    rotations = random_rotations(50, np.random.default_rng(4))
    eulers = relion_eulers(rotations)
    assert eulers.shape == (50, 3) and np.all((eulers >= -180) & (eulers < 180))
    np.testing.assert_allclose(rotations_from_relion(eulers), rotations, atol=1e-10)
    utils = pytest.importorskip("cryodrgn.utils")
    np.testing.assert_allclose(utils.R_from_relion(eulers), rotations, atol=1e-10)


def test_population_of_the_two_basins_is_70_30():
    population = path_population(98, BASINS_70_30)
    assert population.sum() == pytest.approx(1.0)
    assert population[:49].sum() == pytest.approx(0.7, abs=0.005)


def _path(n_frames=5, n_atoms=12, seed=0):
    rng = np.random.default_rng(seed)
    start = rng.uniform(-8, 8, size=(n_atoms, 3))
    return np.stack([start + t * np.array([4.0, 0, 0]) * (np.arange(n_atoms) % 2)[:, None]
                     for t in np.linspace(0, 1, n_frames)]) + 50.0


def test_simulated_particles_have_the_asked_snr_and_draw_frames_by_population():
    config = dataclasses.replace(PARTICLE_PRESETS["smoke"], n_particles=400, snr=0.5)
    frames = _path()
    particles = simulate_particles(frames, np.full(12, 6), config, np.random.default_rng(5))
    assert particles.images.shape == (400, 32, 32) and particles.images.dtype == np.float32
    signal_var = particles.images.var() - particles.noise_sigma**2
    assert signal_var / particles.noise_sigma**2 == pytest.approx(0.5, rel=0.15)
    share = np.bincount(particles.frame, minlength=5) / 400
    np.testing.assert_allclose(share, path_population(5, BASINS_70_30), atol=0.07)
    again = simulate_particles(frames, np.full(12, 6), config, np.random.default_rng(5))
    np.testing.assert_array_equal(again.images, particles.images)  # the generator alone decides


def test_particle_config_refuses_bad_values():
    with pytest.raises(ValueError, match="snr"):
        ParticleConfig(snr=0.0)
    with pytest.raises(ValueError, match="n_particles"):
        ParticleConfig(n_particles=0)
    with pytest.raises(ValueError, match="defocus"):
        ParticleConfig(defocus=(20000.0, 10000.0))


def test_dataset_files_are_relion_31(tmp_path):
    config = dataclasses.replace(PARTICLE_PRESETS["smoke"], n_particles=10)
    particles = simulate_particles(_path(), np.full(12, 6), config, np.random.default_rng(6))
    star = write_dataset(tmp_path / "ds", particles, config.optics)
    optics, table = read_particles_star(star)
    assert optics["rlnImagePixelSize"].iloc[0] == config.optics.apix
    assert optics["rlnImageSize"].iloc[0] == config.optics.size
    assert list(table["rlnImageName"][:2]) == ["000001@particles.mrcs", "000002@particles.mrcs"]
    np.testing.assert_allclose(rotations_from_relion(table[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy()),
                               particles.rotations, atol=1e-8)
    np.testing.assert_allclose(table["rlnDefocusU"], particles.defocus[:, 0])
    truth = np.loadtxt(tmp_path / "ds" / "truth.csv", delimiter=",", skiprows=1, dtype=int)
    np.testing.assert_array_equal(truth[:, 1], particles.frame)


def test_a_star_file_without_optics_is_refused(tmp_path):
    bad = tmp_path / "old.star"
    bad.write_text("data_\nloop_\n_rlnImageName #1\n000001@x.mrcs\n")
    with pytest.raises(ValueError, match="old.star: no data_optics block"):
        read_particles_star(bad)


def test_map_frame_offset_puts_the_mean_atom_at_the_centre_voxel():
    frames = _path()
    optics = Optics(size=32, apix=3.0)
    moved = frames + map_frame_offset(frames, optics)
    np.testing.assert_allclose(moved.reshape(-1, 3).mean(0), [48.0, 48.0, 48.0])


def test_image_stack_round_trip_and_a_damaged_stack_is_named(tmp_path):
    config = dataclasses.replace(PARTICLE_PRESETS["smoke"], n_particles=6)
    particles = simulate_particles(_path(), np.full(12, 6), config, np.random.default_rng(7))
    star = write_dataset(tmp_path, particles, config.optics)
    np.testing.assert_array_equal(read_image_stack(star.with_suffix(".mrcs"), 4), particles.images[:4])
    bad = tmp_path / "bad.mrcs"
    bad.write_bytes(b"not a stack")
    with pytest.raises(ValueError, match="bad.mrcs: not a readable MRC image stack"):
        read_image_stack(bad)


def test_particle_dataset_is_made_once_and_refuses_other_settings(tmp_path):
    config = dataclasses.replace(PARTICLE_PRESETS["smoke"], n_particles=8)
    star, frames = particle_dataset(tmp_path / "ds", _path(), np.full(12, 6), config, seed=3)
    made = star.stat().st_mtime_ns
    again, frames_again = particle_dataset(tmp_path / "ds", _path(), np.full(12, 6), config, seed=3)
    assert again == star and again.stat().st_mtime_ns == made  # reused, not rewritten
    np.testing.assert_array_equal(frames, frames_again)
    with pytest.raises(ValueError, match="other settings"):
        particle_dataset(tmp_path / "ds", _path(), np.full(12, 6), config, seed=4)


def test_class_truth_scores(tmp_path):
    frames = _path(n_frames=5)
    lists = [np.array([0, 0, 1]), np.array([4, 4])]
    means = class_means(lists, frames)
    np.testing.assert_allclose(means[0], (2 * frames[0] + frames[1]) / 3)
    np.testing.assert_allclose(class_positions(lists, 5), [1 / 12, 1.0])
    # A class map that is its particles' average density correlates perfectly; another class's map less.
    gridding = Gridding(2.0, (40, 40, 40), (0, 0, 0))
    for name, frame_list in zip(("a.mrc", "b.mrc"), lists):
        average = sum(render_gridded(frames[f], np.full(12, 6), gridding, resolution=4.0) for f in frame_list)
        write_gridded(tmp_path / name, average / len(frame_list), gridding)
    r = class_map_correlations(tmp_path, ["a.mrc", "b.mrc"], lists, frames, np.full(12, 6))
    np.testing.assert_allclose(r, 1.0, atol=1e-5)
    swapped = class_map_correlations(tmp_path, ["a.mrc", "b.mrc"], lists[::-1], frames, np.full(12, 6))
    assert np.all(swapped < 0.99)
