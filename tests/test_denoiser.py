"""The map denoiser as a mixture of G renders (model/denoiser.py): G = 1 is the paper's F(f_θ(…)); with G > 1 the
weights follow how well each component's map explains V_t, and DDIM then reaches every component."""

import dataclasses

import numpy as np
import torch

from cryosampler.model.denoiser import CryoSampler
from cryosampler.model.diffusion import add_noise, log_snr, posterior_weights
from cryosampler.model.featurize import collate, featurize
from cryosampler.sampling import sample_ensemble

from conftest import make_helix, tiny_model


def _with_components(model: CryoSampler, g: int) -> CryoSampler:
    config = dataclasses.replace(model.config, encoder=dataclasses.replace(model.config.encoder, components=g))
    return CryoSampler(config, float(model.sigma_data), model.template).eval()


def _fixed_states(model: CryoSampler, states: torch.Tensor) -> CryoSampler:
    """``model`` whose encoder always returns the coordinate sets ``states`` (G, N, 3) Å, whatever the map."""
    model.components = lambda v_t, t, batch, precision="fp32": states[None].expand(len(v_t), -1, -1, -1).clone()
    return model


def batch_protein(structure, model):
    return featurize(structure, structure.coords, tokens=model.config.encoder.tokens)


def _two_states(structure) -> torch.Tensor:
    """The structure and a copy moved 8 Å along x: their 8 Å-resolution maps barely overlap."""
    coords = torch.tensor(structure.coords, dtype=torch.float32)
    return torch.stack([coords, coords + torch.tensor([8.0, 0.0, 0.0])])


def test_one_component_is_the_paper_denoiser(tiny_structure):
    model = tiny_model(tiny_structure)
    batch = collate([featurize(tiny_structure, tiny_structure.coords, tokens=model.config.encoder.tokens)] * 2)
    v_t = torch.randn((2,) + (model.config.grid.size,) * 3, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.3, 0.9])
    with torch.no_grad():
        coords, v0_hat = model.denoise(v_t, t, batch)
        direct = model.encoder(v_t, log_snr(t, model.config.diffusion), batch)
    assert coords.shape == (2, 1, tiny_structure.n_atoms, 3)
    assert torch.equal(coords, direct)
    assert torch.equal(v0_hat, model.render(direct[:, 0], batch))
    assert torch.equal(model.atoms(v_t, t, batch), direct[:, 0])


def test_weights_pick_the_component_a_lightly_noised_map_shows_and_hesitate_in_noise():
    helix = make_helix(12, "helix")
    model = _fixed_states(_with_components(tiny_model(helix, grid={"size": 24, "apix": 2.0, "resolution": 8.0}), 2),
                          _two_states(helix))
    batch = collate([batch_protein(helix, model)])
    with torch.no_grad():
        _, _, maps = model.mixture(torch.zeros((1,) + (24,) * 3), torch.zeros(1), batch)
        v0 = maps[:, 1]  # the map of component 1
        generator = torch.Generator().manual_seed(1)
        v_t, _ = add_noise(v0, torch.tensor([0.2]), model.sigma_data, generator)
        _, weights, _ = model.mixture(v_t, torch.tensor([0.2]), batch)
        assert float(weights[0, 1]) > 0.999
        assert torch.equal(model.atoms(v_t, torch.tensor([0.2]), batch)[0], _two_states(helix)[1])
        noise = torch.randn((32,) + (24,) * 3, generator=generator)
        _, weights, _ = model.mixture(noise, torch.ones(32), collate([batch_protein(helix, model)] * 32))
        assert 0.3 < float(weights[:, 0].mean()) < 0.7
        _, v0_hat = model.denoise(noise[:2], torch.ones(2), collate([batch_protein(helix, model)] * 2))
        _, weights, maps = model.mixture(noise[:2], torch.ones(2), collate([batch_protein(helix, model)] * 2))
        torch.testing.assert_close(v0_hat, torch.einsum("bg,bgxyz->bxyz", weights, maps))
        # The weights are the shared posterior of diffusion.py (tested there), on the renders in map units.
        assert torch.equal(weights, posterior_weights(noise[:2], torch.ones(2), maps, model.sigma_data,
                                                      model.config.diffusion))



def test_sampling_a_two_component_mixture_reaches_both_far_apart_states_and_one_component_does_not():
    helix = make_helix(12, "helix")
    grid = {"size": 24, "apix": 2.0, "resolution": 8.0}
    states = _two_states(helix)
    protein = batch_protein(helix, tiny_model(helix, grid=grid))
    mixture = _fixed_states(_with_components(tiny_model(helix, grid=grid), 2), states)
    single = _fixed_states(tiny_model(helix, grid=grid), states[:1])
    found = {}
    for name, model in (("mixture", mixture), ("single", single)):
        ensemble = sample_ensemble(model, protein, 24, torch.Generator().manual_seed(2), batch_size=24, n_steps=25)
        distance = np.linalg.norm(ensemble.coords[:, None] - states.numpy()[None], axis=-1).mean(-1)  # (S, 2) Å
        assert float(distance.min(1).max()) < 1e-4  # every sample is one of the components, exactly
        found[name] = np.bincount(distance.argmin(1), minlength=2)
    assert found["single"].tolist() == [24, 0]
    assert min(found["mixture"]) >= 6, found  # both states, neither below a quarter of the samples
