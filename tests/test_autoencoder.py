"""Stage 1 of the latent model: shapes and units, the untrained decoder is the reference, KL against hand values."""

import math

import pytest
import torch

from cryosampler.io.grid import MapGrid
from cryosampler.model.autoencoder import (AUTOENCODER_PRESETS, INITIAL_SIGMA, AutoencoderConfig, MapAutoencoder,
                                           kl_divergence, sample_posterior)
from cryosampler.model.featurize import collate, featurize

from conftest import TINY_GRID, tiny_examples

CONFIG = AUTOENCODER_PRESETS["smoke"]


def _model(seed: int = 0) -> MapAutoencoder:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MapAutoencoder(CONFIG, MapGrid(**TINY_GRID), sigma_data=1.0)


def test_encode_and_decode_shapes(tiny_structure):
    examples = tiny_examples(tiny_structure)
    model = _model()
    volume = torch.stack([e.volume for e in examples])  # (2, 16, 16, 16)
    mean, log_var = model.encode(volume)
    assert mean.shape == log_var.shape == (2, CONFIG.latent_dim)
    torch.testing.assert_close(log_var, torch.full_like(log_var, 2 * math.log(INITIAL_SIGMA)))  # narrow at first
    batch = collate([examples[0].protein] * 2)
    coords = model.decode(mean, batch)
    assert coords.shape == (2, tiny_structure.n_atoms, 3) and coords.dtype == torch.float32
    assert model.render(coords, batch).shape == (2, 16, 16, 16)


def test_an_untrained_decoder_returns_the_reference_for_any_latent(tiny_structure):
    protein = featurize(tiny_structure, tiny_structure.coords)
    z = torch.randn(3, CONFIG.latent_dim, generator=torch.Generator().manual_seed(1)) * 10
    coords = _model().decode(z, collate([protein] * 3))
    torch.testing.assert_close(coords, protein.ref_coords.expand(3, -1, -1), rtol=0, atol=1e-5)  # Å, rounding


def test_padded_atoms_stay_at_their_reference(tiny_structure):
    from conftest import make_helix

    small = featurize(make_helix(4), make_helix(4).coords)
    big = featurize(tiny_structure, tiny_structure.coords)
    model = _model()
    torch.nn.init.normal_(model.decoder.head[-1].weight, std=0.1)  # move the real atoms
    batch = collate([small, big])
    coords = model.decode(torch.randn(2, CONFIG.latent_dim, generator=torch.Generator().manual_seed(2)), batch)
    padded = ~batch.atom_mask[0]
    assert padded.any() and torch.equal(coords[0][padded], batch.ref_coords[0][padded])
    assert not torch.equal(coords[1], batch.ref_coords[1])


def test_kl_against_hand_values():
    # ½ Σ (μ² + σ² − 1 − log σ²): (1 + 1 − 1 − 0) / 2 + (0 + 4 − 1 − log 4) / 2
    mean = torch.tensor([[1.0, 0.0]])
    log_var = torch.tensor([[0.0, math.log(4.0)]])
    assert float(kl_divergence(mean, log_var)[0]) == pytest.approx(0.5 + (3 - math.log(4.0)) / 2, rel=1e-6)
    assert float(kl_divergence(torch.zeros(1, 5), torch.zeros(1, 5))[0]) == 0.0  # the prior itself


def test_posterior_draws_are_reproducible_and_have_the_posterior_moments():
    mean, log_var = torch.tensor([[2.0, -1.0]]).expand(20000, 2), torch.tensor([[0.0, math.log(0.25)]]).expand(20000, 2)
    a = sample_posterior(mean, log_var, torch.Generator().manual_seed(3))
    b = sample_posterior(mean, log_var, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    torch.testing.assert_close(a.mean(0), torch.tensor([2.0, -1.0]), atol=0.03, rtol=0)
    torch.testing.assert_close(a.std(0), torch.tensor([1.0, 0.5]), atol=0.02, rtol=0)


def test_configs_refuse_bad_sizes():
    with pytest.raises(ValueError, match="latent_dim"):
        AutoencoderConfig(latent_dim=0)
    with pytest.raises(ValueError, match="multiple of heads"):
        AutoencoderConfig(width=30, heads=4)
    with pytest.raises(ValueError, match="no voxel"):
        MapAutoencoder(AutoencoderConfig(input_pool=32), MapGrid(**TINY_GRID), 1.0)


def test_rigid_motion_keeps_every_residues_shape(tiny_structure):
    from cryosampler.model.autoencoder import _rotation

    rotation = _rotation(torch.randn(5, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64))
    torch.testing.assert_close(rotation @ rotation.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(5, 3, 3))
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(_rotation(torch.zeros(3)), torch.eye(3))

    assert CONFIG.motion == "rigid"
    protein = featurize(tiny_structure, tiny_structure.coords)
    model = _model()
    torch.nn.init.normal_(model.decoder.head[-1].weight, std=0.3)  # turn and move every residue
    coords = model.decode(torch.randn(1, CONFIG.latent_dim, generator=torch.Generator().manual_seed(7)),
                          collate([protein]))[0]
    assert (coords - protein.ref_coords).norm(dim=1).max() > 0.5  # Å: it moved
    for residue in range(int(protein.atom_token.max()) + 1):
        atoms = protein.atom_token == residue
        torch.testing.assert_close(torch.cdist(coords[atoms], coords[atoms]),
                                   torch.cdist(protein.ref_coords[atoms], protein.ref_coords[atoms]), atol=1e-4,
                                   rtol=0)
