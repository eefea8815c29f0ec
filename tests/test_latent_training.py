"""Training and sampling the latent model: the map term against hand values, stage 1 lowers its loss and keeps the
reference's bonds, uses refine's clash term, is reproducible; weighted draws; one structure per sampled latent."""

import dataclasses

import numpy as np
import pytest
import torch

import cryosampler.latent_training as latent_training
from cryosampler.io.grid import MapGrid
from cryosampler.latent_sampling import read_out_latent, sample_structures
from cryosampler.latent_training import (AUTOENCODER_TRAIN_PRESETS, LATENT_TRAIN_PRESETS, autoencoder_losses,
                                         draw_weighted, encode_examples, map_mismatch, train_autoencoder,
                                         train_latent_diffusion)
from cryosampler.model.autoencoder import AUTOENCODER_PRESETS
from cryosampler.model.latent_diffusion import LATENT_DIFFUSION_PRESETS
from cryosampler.model.structural_losses import bond_pairs
from cryosampler.refine import clash_penalty

from conftest import TINY_GRID, tiny_examples

GRID = MapGrid(**TINY_GRID)
SMOKE = AUTOENCODER_PRESETS["smoke"]


@pytest.fixture(scope="module")
def trained():
    """Stage 1 on the two tiny maps (the helix shifted by ±1 Å along x), 40 steps, and its log."""
    from conftest import make_helix

    structure = make_helix()
    examples = tiny_examples(structure)
    config = dataclasses.replace(AUTOENCODER_TRAIN_PRESETS["smoke"], steps=40, lr=3e-3)
    model, log = train_autoencoder(examples, SMOKE, config, grid=GRID)
    return structure, examples, model, log


def test_map_mismatch_against_hand_values():
    a = torch.arange(8.0).reshape(1, 2, 2, 2)
    assert float(map_mismatch(a, 3 * a + 5)[0]) == pytest.approx(0.0, abs=1e-6)  # r ignores scale and offset
    assert float(map_mismatch(a, -a)[0]) == pytest.approx(2.0, abs=1e-6)
    b = torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0]).reshape(1, 2, 2, 2)
    c = torch.tensor([0.0, 1, 0, 0, 0, 0, 0, 0]).reshape(1, 2, 2, 2)
    # r of two one-hot vectors of length 8: (0 − 8·(1/8)²) / (1 − 1/8) = −1/7.
    assert float(map_mismatch(b, c)[0]) == pytest.approx(1 + 1 / 7, abs=1e-6)


def test_stage1_lowers_the_map_term_and_keeps_the_bonds(trained):
    structure, examples, model, log = trained
    assert log["map"].iloc[-5:].mean() < log["map"].iloc[:5].mean()
    # Decode each map's posterior mean: one structure with the reference's atoms, bonds near the reference's.
    reference = examples[0].protein.ref_coords.numpy()
    bonds = bond_pairs(structure.coords, structure.res_nums, structure.atom_names)
    for example in examples:
        coords, mean = read_out_latent(model, example.protein, example.volume)
        assert coords.shape == reference.shape and np.isfinite(coords).all() and mean.shape == (SMOKE.latent_dim,)
        deviation = np.abs(np.linalg.norm(coords[bonds[:, 0]] - coords[bonds[:, 1]], axis=1)
                           - np.linalg.norm(reference[bonds[:, 0]] - reference[bonds[:, 1]], axis=1))
        assert deviation.max() < 0.1  # Å


def test_stage1_is_reproducible_from_its_seed_and_leaves_the_global_generator(tiny_structure):
    examples = tiny_examples(tiny_structure)
    config = dataclasses.replace(AUTOENCODER_TRAIN_PRESETS["smoke"], steps=3)
    state = torch.random.get_rng_state()
    (a, log_a), (b, log_b) = (train_autoencoder(examples, SMOKE, config, grid=GRID) for _ in range(2))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert log_a.drop(columns="seconds").equals(log_b.drop(columns="seconds"))
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(p, q)


def test_the_clash_term_is_refines(tiny_structure, monkeypatch):
    # The clash sum must come from refine.clash_penalty, not a copy: pull two atoms of far residues together.
    examples = tiny_examples(tiny_structure)
    model, _ = train_autoencoder(examples, SMOKE, dataclasses.replace(AUTOENCODER_TRAIN_PRESETS["smoke"], steps=1),
                                 grid=GRID)
    ref = examples[0].protein.ref_coords
    far = int(np.flatnonzero(examples[0].protein.token_position[examples[0].protein.atom_token].numpy() == 9)[0])
    moved = ref.clone()
    moved[far] = ref[0] + torch.tensor([1.0, 0.0, 0.0])
    monkeypatch.setattr(model, "decode", lambda z, batch: moved.expand(len(z), -1, -1))
    calls = []

    def spy(*args):
        calls.append(args)
        return clash_penalty(*args)

    monkeypatch.setattr(latent_training, "clash_penalty", spy)
    losses = autoencoder_losses(model, examples, torch.tensor([0]), AUTOENCODER_TRAIN_PRESETS["smoke"],
                                torch.Generator().manual_seed(0))
    assert len(calls) == 1 and float(losses.clash) == pytest.approx(float(spy(*calls[0])), rel=1e-6)
    assert float(losses.clash) > 0.5  # (2.5 − 1)² at least, from the pair moved 1 Å apart


def test_weighted_draws_follow_the_weights():
    index = draw_weighted(torch.tensor([0.8, 0.0, 0.2]), 20000, torch.Generator().manual_seed(0))
    counts = torch.bincount(index, minlength=3).double() / 20000
    torch.testing.assert_close(counts, torch.tensor([0.8, 0.0, 0.2], dtype=torch.float64), atol=0.01, rtol=0)
    for bad in ([0.0, 0.0], [1.0, float("nan")], [[1.0]]):
        with pytest.raises(ValueError, match="map weights"):
            draw_weighted(torch.tensor(bad), 4, torch.Generator())


def test_sampled_latents_decode_to_one_structure_each_reproducibly(trained):
    _, examples, model, _ = trained
    mean, log_var = encode_examples(model, examples)
    assert mean.shape == log_var.shape == (2, SMOKE.latent_dim)
    config = dataclasses.replace(LATENT_TRAIN_PRESETS["smoke"], steps=30)
    prior, _ = train_latent_diffusion(mean, log_var, LATENT_DIFFUSION_PRESETS["smoke"], config)
    protein = examples[0].protein
    a = sample_structures(model, prior, protein, 5, torch.Generator().manual_seed(1), batch_size=2)
    b = sample_structures(model, prior, protein, 5, torch.Generator().manual_seed(1), batch_size=4)
    assert a.coords.shape == (5, protein.ref_coords.shape[0], 3) and a.latents.shape == (5, SMOKE.latent_dim)
    assert np.isfinite(a.coords).all()
    np.testing.assert_array_equal(a.latents, b.latents)
    np.testing.assert_allclose(a.coords, b.coords, atol=1e-5)  # batching changes only rounding
