"""Atomic encoder f_θ: shapes, identity at initialisation, padding never affects real atoms."""

import dataclasses

import pytest
import torch

from cryosampler.model.encoder import ENCODER_PRESETS, AtomicEncoder, EncoderConfig, sample_at_atoms
from cryosampler.model.featurize import collate, featurize

from conftest import make_helix

GRID, APIX = 16, 2.0


def _encoder(tokens="residue", features="sampled", seed=0, sequence_features=True):
    config = EncoderConfig(cnn_channels=(4, 8), volume_features=features, tokens=tokens, width=32, depth=2,
                           heads=2, head_hidden=32, atom_embed=8, max_tokens=64, sequence_features=sequence_features)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = AtomicEncoder(config, GRID, APIX)
        # Leave the zero-initialised output layers trainable-but-nonzero so the tests see real outputs.
        for p in encoder.parameters():
            if torch.count_nonzero(p) == 0 and p.ndim > 0:
                p.data.normal_(std=0.05)
    return encoder


def test_untrained_encoder_returns_the_reference(tiny_structure):
    config = ENCODER_PRESETS["smoke"]
    encoder = AtomicEncoder(config, GRID, APIX)
    batch = collate([featurize(tiny_structure, tiny_structure.coords, tokens=config.tokens)])
    out = encoder(torch.randn(1, GRID, GRID, GRID), torch.zeros(1), batch)
    torch.testing.assert_close(out, batch.ref_coords[:, None])  # (B, G = 1, N, 3)


@pytest.mark.parametrize("tokens,features", [("residue", "sampled"), ("atom", "global"), ("atom", "sampled")])
def test_padding_never_affects_real_atoms(tokens, features):
    small, large = make_helix(4, "small"), make_helix(7, "large")
    proteins = [featurize(s, s.coords, tokens=tokens) for s in (small, large)]
    encoder = _encoder(tokens, features).eval()
    volume = torch.randn(2, GRID, GRID, GRID, generator=torch.Generator().manual_seed(1))
    log_snr = torch.tensor([0.5, -1.0])
    together = encoder(volume, log_snr, collate(proteins))[:, 0]  # (2, N_large, 3), small one padded
    alone = encoder(volume[:1], log_snr[:1], collate(proteins[:1]))[:, 0]
    assert together.shape == (2, large.n_atoms, 3)
    torch.testing.assert_close(together[0, : small.n_atoms], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(together[0, small.n_atoms:], torch.zeros(large.n_atoms - small.n_atoms, 3))


def test_output_depends_on_the_map_and_noise_level(tiny_structure):
    encoder = _encoder().eval()
    batch = collate([featurize(tiny_structure, tiny_structure.coords)] * 2)
    volume = torch.randn(2, GRID, GRID, GRID, generator=torch.Generator().manual_seed(2))
    a = encoder(volume, torch.zeros(2), batch)
    assert not torch.allclose(a[0], a[1])  # different maps
    b = encoder(volume, torch.full((2,), 5.0), batch)
    assert not torch.allclose(a, b)  # different noise level


def test_backward_reaches_every_parameter(tiny_structure):
    encoder = _encoder()
    batch = collate([featurize(tiny_structure, tiny_structure.coords)])
    out = encoder(torch.randn(1, GRID, GRID, GRID), torch.zeros(1), batch)
    out.square().sum().backward()
    unused = [n for n, p in encoder.named_parameters() if p.grad is None and not n.startswith("to_latents")]
    assert not unused, unused


def test_global_features_reject_too_many_tokens(tiny_structure):
    encoder = _encoder("atom", "global")
    big = make_helix(20)
    batch = collate([featurize(big, big.coords, tokens="atom")])
    with pytest.raises(ValueError, match="max_tokens"):
        encoder(torch.randn(1, GRID, GRID, GRID), torch.zeros(1), batch)


@pytest.mark.parametrize("preset", ["paper", "default", "smoke"])
def test_presets_run_forward_and_backward_on_64_cubed_maps(preset, tiny_structure):
    config = ENCODER_PRESETS[preset]
    encoder = AtomicEncoder(config, 64, 2.0)
    batch = collate([featurize(tiny_structure, tiny_structure.coords, tokens=config.tokens)])
    out = encoder(torch.randn(1, 64, 64, 64), torch.zeros(1), batch)
    assert out.shape == (1, 1, tiny_structure.n_atoms, 3)
    (out[:, 0] - batch.ref_coords + 1.0).square().sum().backward()
    assert all(p.grad is not None for p in encoder.head.parameters())


@pytest.mark.parametrize("sequence_features", [True, False])
def test_sequence_features_are_an_option(tiny_structure, sequence_features):
    encoder = _encoder(sequence_features=sequence_features)
    protein = featurize(tiny_structure, tiny_structure.coords, tokens="residue")
    batch = collate([protein])
    # The same geometry with other residue types and atom names.
    renamed = collate([dataclasses.replace(protein, token_residue_type=(protein.token_residue_type + 5) % 20,
                                           atom_type=(protein.atom_type + 7) % 40)])
    volume, log_snr = torch.randn(1, GRID, GRID, GRID, generator=torch.Generator().manual_seed(1)), torch.zeros(1)
    with torch.no_grad():
        same = torch.equal(encoder(volume, log_snr, batch), encoder(volume, log_snr, renamed))
    assert same != sequence_features
    has_embeddings = any("name" in n for n, _ in encoder.named_parameters())
    assert has_embeddings == sequence_features


def test_configs_without_the_sequence_option_load_with_it_on():
    # Checkpoints written before the option existed were trained with sequence features.
    from cryosampler.model.denoiser import ModelConfig

    d = ModelConfig().to_dict()
    del d["encoder"]["sequence_features"]
    assert ModelConfig.from_dict(d).encoder.sequence_features is True


def test_atoms_read_features_where_they_are():
    """Each level's feature map holds a linear function of its voxel centres' positions (Å); trilinear reads
    at atom positions must return that function's value there (exact for a linear function)."""
    grid_size, apix = 64, 2.0
    encoder = AtomicEncoder(ENCODER_PRESETS["default"], grid_size, apix)
    generator = torch.Generator().manual_seed(0)
    slope, offset = torch.tensor([0.3, -0.2, 0.1]), 1.5
    volume = torch.zeros(1, 1, grid_size, grid_size, grid_size)
    feature_maps = []
    h, cond = volume, torch.zeros(1, encoder.config.width)
    for level, stage in enumerate(encoder.stages, start=1):
        h = stage(h, cond)  # the real stages give the real level sizes
        size = h.shape[-1]
        centres = (torch.arange(size) * 2**level - grid_size // 2) * apix  # Å, voxel centres of this level
        x, y, z = torch.meshgrid(centres, centres, centres, indexing="ij")
        value = slope[0] * x + slope[1] * y + slope[2] * z + offset
        feature_maps.append(value.expand(1, 2, size, size, size))
    # Atoms anywhere inside the hull of the coarsest level's voxel centres.
    coarsest = (torch.arange(h.shape[-1]) * 2**len(encoder.stages) - grid_size // 2) * apix
    coords = coarsest[0] + (coarsest[-1] - coarsest[0]) * torch.rand(1, 200, 3, generator=generator)
    read = sample_at_atoms(feature_maps, coords, grid_size, apix)  # (1, 200, 2 * levels)
    expected = coords @ slope + offset  # (1, 200)
    torch.testing.assert_close(read, expected[..., None].expand_as(read), atol=1e-4, rtol=1e-5)


def test_components_are_g_coordinate_sets_that_start_apart(tiny_structure):
    config = dataclasses.replace(ENCODER_PRESETS["smoke"], components=3)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        encoder = AtomicEncoder(config, GRID, APIX)
    batch = collate([featurize(tiny_structure, tiny_structure.coords, tokens=config.tokens)] * 2)
    with torch.no_grad():
        out = encoder(torch.randn(2, GRID, GRID, GRID), torch.zeros(2), batch)
    assert out.shape == (2, 3, tiny_structure.n_atoms, 3)
    # Near the reference (small initial offsets) but not equal to each other: symmetric components would stay so.
    assert float((out - batch.ref_coords[:, None]).abs().max()) < 0.5
    assert not torch.allclose(out[:, 0], out[:, 1])
    with pytest.raises(ValueError, match="components"):
        dataclasses.replace(config, components=0)


def test_configs_without_components_load_as_one_structure():
    # Checkpoints written before the mixture existed have one coordinate set per map.
    from cryosampler.model.denoiser import ModelConfig

    d = ModelConfig().to_dict()
    del d["encoder"]["components"]
    assert ModelConfig.from_dict(d).encoder.components == 1
