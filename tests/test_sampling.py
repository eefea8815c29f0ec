"""Sampling: DDIM + read-out are deterministic given a generator and streamed in batches; references are
validated and placed."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cryosampler.model.featurize import featurize
from cryosampler.physics.frame import MAX_TEMPLATE_RMSD
from cryosampler.model.diffusion import DiffusionConfig, alpha_sigma
from cryosampler.physics.render import render_density
from cryosampler.io.grid import MapGrid
from cryosampler.sampling import iter_reference_samples, iter_samples, sample_ensemble
from cryosampler.reference import prepare_reference
from cryosampler.readout import matched_time
from cryosampler.io.atomic_files import read_structure

from conftest import make_helix, tiny_model


def test_ddim_with_a_fixed_generator_is_deterministic(tiny_structure):
    model = tiny_model(tiny_structure)
    protein = featurize(tiny_structure, tiny_structure.coords)
    a = sample_ensemble(model, protein, 3, torch.Generator().manual_seed(1), batch_size=2, n_steps=4)
    b = sample_ensemble(model, protein, 3, torch.Generator().manual_seed(1), batch_size=2, n_steps=4)
    c = sample_ensemble(model, protein, 3, torch.Generator().manual_seed(2), batch_size=2, n_steps=4)
    assert a.coords.shape == (3, tiny_structure.n_atoms, 3) and a.maps.shape == (3, 16, 16, 16)
    np.testing.assert_array_equal(a.coords, b.coords)
    np.testing.assert_array_equal(a.maps, b.maps)
    assert not np.allclose(a.coords, c.coords)


def _reference_samples(model, structure, n_samples, **kwargs):
    batches = iter_reference_samples(model, prepare_reference(model, structure), n_samples, seed=0, **kwargs)
    return np.concatenate([coords for coords, _ in batches])


def test_samples_come_back_in_the_input_frame(tiny_structure):
    model = tiny_model(tiny_structure)
    rotation = Rotation.from_euler("xyz", [30, 60, 90], degrees=True).as_matrix()
    moved = tiny_structure.with_coords(tiny_structure.coords @ rotation.T + [100.0, -50.0, 20.0])
    direct = _reference_samples(model, tiny_structure, 2, n_steps=3)
    placed = _reference_samples(model, moved, 2, n_steps=3)
    # The same protein in another frame gives the same samples, moved by the same rigid motion.
    np.testing.assert_allclose(placed, direct @ rotation.T + [100.0, -50.0, 20.0], atol=1e-3)


def test_samples_stream_in_batches_of_at_most_batch_size(tiny_structure):
    model = tiny_model(tiny_structure)
    protein = featurize(tiny_structure, tiny_structure.coords)
    batches = list(iter_samples(model, protein, 5, torch.Generator().manual_seed(1), batch_size=2, n_steps=2))
    assert [len(b.coords) for b in batches] == [2, 2, 1] and [len(b.maps) for b in batches] == [2, 2, 1]
    whole = sample_ensemble(model, protein, 5, torch.Generator().manual_seed(1), batch_size=2, n_steps=2)
    np.testing.assert_array_equal(np.concatenate([b.coords for b in batches]), whole.coords)


@pytest.mark.parametrize("setting,message", [(dict(batch_size=0), "batch_size must be a positive integer"),
                                             (dict(batch_size=-1), "batch_size must be a positive integer"),
                                             (dict(n_samples=0), "n_samples must be a positive integer"),
                                             (dict(n_steps=1), "n_steps must be at least 2")])
def test_bad_sizes_are_rejected(tiny_structure, setting, message):
    model = tiny_model(tiny_structure)
    protein = featurize(tiny_structure, tiny_structure.coords)
    kwargs = dict(n_samples=2, batch_size=2, n_steps=2) | setting
    with pytest.raises(ValueError, match=message):
        sample_ensemble(model, protein, generator=torch.Generator(), **kwargs)


def test_reference_outside_the_box_is_rejected(tiny_structure):
    model = tiny_model(tiny_structure)
    long_chain = make_helix(30, "long")  # 45 Å long: does not fit the 32 Å box
    with pytest.raises(ValueError, match="box"):
        prepare_reference(model, long_chain)


def test_reference_unrelated_to_the_template_is_rejected(tiny_structure):
    model = tiny_model(tiny_structure)
    with pytest.raises(ValueError, match="residue numbers"):
        prepare_reference(model, make_helix(first_residue=501))


def test_reference_box_error_names_the_file_and_extent(tiny_structure):
    model = tiny_model(tiny_structure)
    with pytest.raises(ValueError, match=r"^long.pdb: atoms span 4\d\.\d Å .* box holds .* 32\.0 Å\); the protein"):
        prepare_reference(model, make_helix(30, "long"), source="long.pdb")


# A model of calmodulin: box large enough for a 60-residue helix, so only the fit check stops it.
CALMODULIN_GRID = dict(size=24, apix=4.0, resolution=8.0)


def test_template_fit_of_calmodulins_and_a_helix(shared_pdb):
    model = tiny_model(read_structure(shared_pdb("1exr.pdb")), grid=CALMODULIN_GRID)
    for name in ("3cln.pdb", "1cll.pdb", "4cln.pdb"):
        assert prepare_reference(model, read_structure(shared_pdb(name))).template_rmsd < 1.0
    with pytest.raises(ValueError, match=r"^helix.pdb: CA atoms fit the model's template at 19\.6 Å RMSD .*limit 8 Å"):
        prepare_reference(model, make_helix(60, "helix"), source="helix.pdb")
    accepted = prepare_reference(model, make_helix(60, "helix"), max_template_rmsd=math.inf)
    assert accepted.template_rmsd > MAX_TEMPLATE_RMSD


def test_bf16_sampling_is_finite_and_close_to_fp32(tiny_structure):
    model = tiny_model(tiny_structure)
    protein = featurize(tiny_structure, tiny_structure.coords)
    fp32, bf16 = (sample_ensemble(model, protein, 2, torch.Generator().manual_seed(1), n_steps=3, precision=p)
                  for p in ("fp32", "bf16"))
    assert bf16.coords.dtype == np.float32 and np.isfinite(bf16.coords).all() and np.isfinite(bf16.maps).all()
    assert not np.array_equal(bf16.coords, fp32.coords)
    np.testing.assert_allclose(bf16.coords, fp32.coords, atol=0.1)
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'half'"):
        sample_ensemble(model, protein, 2, torch.Generator(), n_steps=3, precision="half")


def test_matched_time_reads_the_noise_where_the_protein_is_not_and_ignores_padding():
    grid = MapGrid()
    helix = make_helix(12)
    rendered = render_density(torch.tensor(helix.coords)[None], torch.tensor(helix.atomic_numbers), grid)[0]
    signal = rendered / rendered.std()
    config = DiffusionConfig()
    assert float(matched_time(signal, rendered, config)) == 0.0  # clean: eq. 12's t → 0
    noise = torch.randn(signal.shape, generator=torch.Generator().manual_seed(0), dtype=signal.dtype)
    for level in (0.5, 2.0, 8.0):
        t = matched_time(signal + level * noise, rendered, config)
        alpha, sigma = alpha_sigma(t, config)
        assert float(sigma / alpha) == pytest.approx(level, rel=0.02)
        padded = (signal + level * noise).clone()
        padded[:20] = 0.0  # outside a user's box, or rotated out of it
        assert float(matched_time(padded, rendered, config)) == pytest.approx(float(t), abs=0.01)
    masked = torch.where(rendered > 1e-3 * rendered.max(), signal + noise, torch.zeros(()))
    assert float(matched_time(masked, rendered, config)) == 0.0  # a masked map: no noise to measure


def test_read_out_noised_is_read_out_when_nearly_clean_and_follows_its_generator(tiny_structure):
    from cryosampler.readout import read_out, read_out_noised

    model = tiny_model(tiny_structure)
    model.sigma_data.fill_(2.5)  # not 1, so that a missing 1/σ_data would show
    protein = featurize(tiny_structure, tiny_structure.coords)
    v0 = render_density(protein.ref_coords[None] + torch.tensor([1.5, 0.0, 0.0]), protein.atomic_numbers,
                        model.config.grid)[0]
    # Almost no noise: what read_out, the tested eq.-12 read-out, gives for the clean map (t 1e-4 against its
    # matched t, hence the tolerance).
    clean = read_out_noised(model, protein, v0, 1e-4, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(clean, read_out(model, protein, v0), atol=5e-3)
    unscaled = read_out(model, protein, v0 * 2.5)
    assert np.abs(clean - unscaled).max() > 5e-2  # the check can tell a wrongly scaled map
    noisy = [read_out_noised(model, protein, v0, 0.9, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    np.testing.assert_array_equal(noisy[0], noisy[1])
    assert np.abs(noisy[0] - noisy[2]).max() > 1e-4 and noisy[0].dtype == np.float64


def test_fit_map_recycles_its_read_out_and_refines_it(tiny_structure):
    from cryosampler.readout import fit_map
    from cryosampler.refine import REFINE_PRESETS

    model = tiny_model(tiny_structure)
    placed = prepare_reference(model, tiny_structure)
    grid = model.config.grid
    moved = tiny_structure.coords - tiny_structure.coords.mean(0) + [1.0, 0.0, 0.0]  # the grid's frame
    volume = render_density(torch.tensor(moved)[None], torch.tensor(tiny_structure.atomic_numbers), grid)[0].numpy()
    once = fit_map(model, tiny_structure, placed, volume)
    np.testing.assert_array_equal(once.coords, once.readout)
    assert once.correlation_fitted == once.correlation_readout
    # A second read-out starts from the first: the model sees the protein where it put it, so it differs.
    twice = fit_map(model, tiny_structure, placed, volume, recycle=1)
    assert twice.coords.shape == once.coords.shape and np.isfinite(twice.coords).all()
    assert np.abs(twice.coords - once.coords).max() > 1e-4
    np.testing.assert_array_equal(fit_map(model, tiny_structure, placed, volume, recycle=1).coords, twice.coords)
    refined = fit_map(model, tiny_structure, placed, volume, refinement=REFINE_PRESETS["fast"])
    np.testing.assert_array_equal(refined.readout, once.readout)
    assert refined.correlation_fitted > refined.correlation_readout == once.correlation_readout
    with pytest.raises(ValueError, match="recycle must be an int ≥ 0"):
        fit_map(model, tiny_structure, placed, volume, recycle=-1)


def test_fit_map_keeps_the_normal_mode_start_when_it_fits_better():
    from cryosampler.physics.nma import anm_modes
    from cryosampler.physics.nma_fit import NmaFitConfig
    from cryosampler.readout import fit_map
    from cryosampler.refine import RefineConfig

    from conftest import make_two_domains

    structure, _ = make_two_domains()
    grid = {"size": 32, "apix": 2.0, "resolution": 8.0}
    model = tiny_model(structure, grid=grid)
    placed = prepare_reference(model, structure)
    # The map shows the reference moved 2 Å RMS along its first mode, which the untrained read-out cannot follow.
    moved = structure.coords + 2.0 * np.sqrt(structure.n_atoms) * anm_modes(structure, 1)[0][0]
    volume = render_density(torch.tensor(moved - structure.coords.mean(0))[None],
                            torch.tensor(structure.atomic_numbers), MapGrid(**grid))[0].numpy()
    refinement, modes = RefineConfig(steps=10), NmaFitConfig(modes=2, steps=10)
    both = fit_map(model, structure, placed, volume, refinement=refinement, normal_modes=modes)
    alone = fit_map(model, structure, placed, volume, refinement=refinement)
    assert both.start == "normal modes" and alone.start == "read-out"
    assert both.correlation_fitted > alone.correlation_fitted
    with pytest.raises(ValueError, match="normal_modes needs refinement"):
        fit_map(model, structure, placed, volume, normal_modes=modes)
