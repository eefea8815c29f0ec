import numpy as np
import pytest

from cryosampler.physics.correlation import map_correlation


def test_map_correlation_matches_numpy_corrcoef():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(3, 6, 6, 6)), rng.normal(size=(2, 6, 6, 6))
    b[0] = 0.3 * a[1] + rng.normal(scale=0.5, size=a[1].shape)
    expected = np.corrcoef(a.reshape(3, -1), b.reshape(2, -1))[:3, 3:]
    np.testing.assert_allclose(map_correlation(a, b), expected, atol=1e-12)


def test_map_correlation_with_itself_and_its_negative():
    rng = np.random.default_rng(5)
    volume = rng.gamma(2.0, size=(1, 8, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(map_correlation(volume, volume), [[1.0]], atol=1e-12)
    np.testing.assert_allclose(map_correlation(volume, -volume), [[-1.0]], atol=1e-12)
    # Pearson's r ignores offset and positive scale.
    np.testing.assert_allclose(map_correlation(volume, 4.0 * volume + 2.0), [[1.0]], atol=1e-12)


def test_map_correlation_rejects_constant_maps_and_other_grids():
    volume = np.random.default_rng(6).normal(size=(2, 4, 4, 4))
    with pytest.raises(ValueError, match=r"maps_b\[1\] is constant"):
        map_correlation(volume, np.stack([volume[0], np.ones((4, 4, 4))]))
    with pytest.raises(ValueError, match="same grid"):
        map_correlation(volume, np.zeros((1, 5, 5, 5)))


def test_pearson_is_map_correlation_in_torch_and_has_its_gradient():
    import torch

    from cryosampler.physics.correlation import pearson

    rng = np.random.default_rng(7)
    volume, rendered = rng.normal(size=(6, 6, 6)), rng.normal(size=(3, 6, 6, 6))
    rendered[1] += 2.0 * volume
    r = pearson(torch.tensor(volume), torch.tensor(rendered))
    np.testing.assert_allclose(r.numpy(), map_correlation(volume[None], rendered)[0], atol=1e-12)
    np.testing.assert_allclose(pearson(torch.tensor(rendered), torch.tensor(rendered)).numpy(), 1.0, atol=1e-12)
    x = torch.tensor(rendered[:1], requires_grad=True)
    assert torch.autograd.gradcheck(lambda y: pearson(torch.tensor(volume), y), (x,))
