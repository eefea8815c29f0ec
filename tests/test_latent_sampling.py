"""The latent traversals' numbers (``latent_sampling``): straight paths between latents, paths along the principal
components of the training maps' latents, and their standardisation, against hand-computed values."""

import numpy as np
import pytest
import torch

from cryosampler.latent_sampling import latent_path, map_principal_path, principal_path
from cryosampler.model.latent_model import LATENT_MODEL_PRESETS, LatentModel


def test_a_latent_path_runs_straight_from_start_to_end_evenly():
    start, end = np.array([1.0, -2.0, 0.5]), np.array([3.0, 2.0, 0.5])
    path, t = latent_path(start, end, 5)
    assert path.shape == (5, 3) and t.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    np.testing.assert_array_equal(path[0], start)
    np.testing.assert_array_equal(path[-1], end)
    np.testing.assert_allclose(np.diff(path, axis=0), np.tile((end - start) / 4, (4, 1)), atol=1e-12)


@pytest.mark.parametrize("start, end, n, message", [(np.zeros(3), np.zeros(4), 5, "one shape"),
                                                    (np.zeros(3), np.ones(3), 1, "n ≥ 2")])
def test_a_latent_path_refuses_bad_input(start, end, n, message):
    with pytest.raises(ValueError, match=message):
        latent_path(start, end, n)


def test_a_principal_path_spans_the_points_along_their_main_axis():
    # A spread along x and a smaller one along y, uncorrelated: component 1 is x, component 2 is y.
    points = np.array([[-3.0, 0.1, 0.0], [1.0, 0.1, 0.0], [2.0, 0.1, 0.0], [0.0, -0.3, 0.0]])
    path, s = principal_path(points, 1, 6)
    mean = points.mean(0)
    np.testing.assert_allclose(s[[0, -1]], [-3.0, 2.0], atol=1e-9)  # the smallest and largest projections on x
    np.testing.assert_allclose(path, mean + s[:, None] * np.array([1.0, 0.0, 0.0]), atol=1e-9)
    second, s2 = principal_path(points, 2, 3)
    np.testing.assert_allclose(s2, [-0.3, -0.1, 0.1], atol=1e-9)
    np.testing.assert_allclose(second[:, 1] - mean[1], s2, atol=1e-9)


def test_the_principal_components_sign_does_not_depend_on_the_points_order():
    points = np.random.default_rng(0).normal(size=(6, 4))
    a, _ = principal_path(points, 1, 4)
    b, _ = principal_path(points[::-1], 1, 4)
    np.testing.assert_allclose(a, b, atol=1e-9)


@pytest.mark.parametrize("k, message", [(0, "1 to 3"), (4, "1 to 3"), (3, "at most 2 directions")])
def test_a_principal_path_refuses_components_that_do_not_exist(k, message):
    with pytest.raises(ValueError, match=message):
        principal_path(np.random.default_rng(1).normal(size=(3, 3)), k, 5)


def test_the_training_maps_principal_path_is_taken_in_standardised_units():
    config = LATENT_MODEL_PRESETS["smoke"]
    d = config.autoencoder.latent_dim
    model = LatentModel(config, 1.0, None, n_maps=3)
    model.prior.latent_mean.copy_(torch.arange(d, dtype=torch.float32))
    model.prior.latent_std.copy_(torch.full((d,), 10.0))
    # Standardised, the three maps lie on dimension 1; the path is taken through slot 0's two only, and comes back
    # in latent units (mean 0, 1, 2, … and spread 10 per dimension).
    u = torch.zeros(3, d)
    u[:, 0] = torch.tensor([-1.0, 0.0, 2.0])
    model.map_mean.copy_(model.prior.destandardise(u))
    model.map_protein.copy_(torch.tensor([0, 0, 1]))
    latents, s = map_principal_path(model, 1, 3, slot=0)
    np.testing.assert_allclose(s, [-0.5, 0.0, 0.5], atol=1e-6)  # slot 0's two maps only, about their mean
    np.testing.assert_allclose(latents[[0, -1]], model.map_mean[:2].double().numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="slot 2 has no training maps"):
        map_principal_path(model, 1, 3, slot=2)
