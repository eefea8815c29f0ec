"""Map renderer: against a direct per-voxel sum in numpy, gradcheck, invariances and the analytic integral."""

import math

import numpy as np
import pytest
import torch

from cryosampler.physics.render import PROFILE_CUTOFF, render_density, trilinear_sum
from cryosampler.io.grid import MapGrid, crop_around

SMALL = MapGrid(size=12, apix=2.0, resolution=8.0)


def direct_sum(coords: np.ndarray, weights: np.ndarray, size: int, apix: float, resolution: float) -> np.ndarray:
    """Reference renderer: coords (N, 3) Å, weights (N,) → (D, D, D), axes (x, y, z), one atom at a time.

    EMAN2 pdb2mrc_by_summation: voxel i sits at (i - D//2) * apix, each atom adds Z exp(-r² / w²), w = res / π,
    with each axis' factor exp(-d²/w²) cut to zero below PROFILE_CUTOFF (EMAN2 cuts the 3D Gaussian at 1e-7).
    """
    centres = (np.arange(size) - size // 2) * apix
    w = resolution / math.pi
    volume = np.zeros((size, size, size))
    for atom, zeta in zip(coords, weights):
        gx, gy, gz = (np.exp(-((centres - a) ** 2) / w**2) for a in atom)
        gx, gy, gz = (np.where(g < PROFILE_CUTOFF, 0.0, g) for g in (gx, gy, gz))
        volume += zeta * gx[:, None, None] * gy[None, :, None] * gz[None, None, :]
    return volume


def random_atoms(rng, batch, atoms, half_width):
    coords = rng.uniform(-half_width, half_width, size=(batch, atoms, 3))
    weights = rng.choice([6.0, 7.0, 8.0, 16.0, 34.0], size=(batch, atoms))
    return coords, weights


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_direct_sum(dtype):
    rng = np.random.default_rng(0)
    coords, weights = random_atoms(rng, batch=2, atoms=7, half_width=9.0)
    volume = render_density(torch.tensor(coords, dtype=dtype), torch.tensor(weights, dtype=dtype), SMALL)
    assert volume.shape == (2, 12, 12, 12) and volume.dtype == dtype
    for b in range(2):
        expected = direct_sum(coords[b], weights[b], 12, 2.0, 8.0)
        np.testing.assert_allclose(volume[b].numpy(), expected, rtol=1e-5, atol=1e-5 * expected.max())


def test_matches_direct_sum_odd_grid_with_shared_weights():
    grid = MapGrid(size=9, apix=1.5, resolution=5.0)
    rng = np.random.default_rng(1)
    coords, _ = random_atoms(rng, batch=1, atoms=4, half_width=5.0)
    weights = np.array([6.0, 7.0, 8.0, 16.0])
    volume = render_density(torch.tensor(coords), torch.tensor(weights), grid)
    np.testing.assert_allclose(volume[0].numpy(), direct_sum(coords[0], weights, 9, 1.5, 5.0), rtol=1e-10)


def test_single_atom_profile_has_eman2_width():
    # σ = res / (π √2) ≈ 1.80 Å at 8 Å: an atom on voxel (6, 6, 6) gives Z exp(-r² / 2σ²) along x.
    volume = render_density(torch.zeros(1, 1, 3, dtype=torch.float64), torch.tensor([16.0]), SMALL)[0]
    sigma = 8.0 / (math.pi * math.sqrt(2))
    assert sigma == pytest.approx(1.80, abs=0.005)
    r = (np.arange(12) - 6) * 2.0
    expected = 16.0 * np.exp(-(r**2) / (2 * sigma**2))
    np.testing.assert_allclose(volume[:, 6, 6].numpy(), np.where(expected < 16e-7, 0.0, expected), rtol=1e-12)


def test_profile_is_cut_at_eman2_threshold():
    # exp(-r²/w²) = 1e-7 at r = w √(ln 1e7) ≈ 10.22 Å for 8 Å maps: the voxel at +10 Å is kept, -12 Å is not.
    volume = render_density(torch.zeros(1, 1, 3, dtype=torch.float64), torch.tensor([1.0]), SMALL)[0]
    profile = volume[:, 6, 6].numpy()  # voxel i at (i - 6) · 2 Å
    w = 8.0 / math.pi
    assert profile[11] == pytest.approx(math.exp(-(10.0 / w) ** 2)) and profile[11] > 1e-7
    assert profile[0] == 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_maps_and_gradients_hold_no_subnormal_floats(dtype):
    # Subnormal floats make CPU arithmetic on them many times slower (docs/performance.md, "Subnormal floats"); products of
    # three uncut profiles far from an atom are subnormal.
    grid = MapGrid(size=64, apix=2.0, resolution=8.0)
    rng = np.random.default_rng(8)
    coords, weights = random_atoms(rng, batch=1, atoms=50, half_width=12.0)
    coords = torch.tensor(coords, dtype=dtype, requires_grad=True)
    volume = render_density(coords, torch.tensor(weights, dtype=dtype), grid)
    volume.square().mean().backward()
    tiny = torch.finfo(dtype).tiny
    for values in (volume.detach(), coords.grad):
        assert not ((values != 0) & (values.abs() < tiny)).any()
    assert int((volume == 0).sum()) > 0  # far from every atom the map is exactly zero


def test_total_density_matches_gaussian_integral():
    # Σ_voxels V = Σ_a Z_a π^{3/2} w³ / apix³ for atoms far from the edges;
    # grid sampling adds a relative error ~ exp(-π² w² / apix²) ≈ 1e-7.
    grid = MapGrid(size=32, apix=2.0, resolution=8.0)
    rng = np.random.default_rng(2)
    coords, weights = random_atoms(rng, batch=1, atoms=20, half_width=10.0)
    volume = render_density(torch.tensor(coords), torch.tensor(weights[0]), grid)
    expected = weights.sum() * math.pi**1.5 * grid.width**3 / grid.apix**3
    assert float(volume.sum()) == pytest.approx(expected, rel=1e-6)


def test_integer_voxel_translation_translates_the_map():
    rng = np.random.default_rng(3)
    coords, weights = random_atoms(rng, batch=1, atoms=6, half_width=4.0)  # stays inside once moved
    coords = torch.tensor(coords)
    weights = torch.tensor(weights[0])
    shift = (2, -1, 3)  # voxels
    moved = render_density(coords + torch.tensor(shift, dtype=coords.dtype) * SMALL.apix, weights, SMALL)[0]
    volume = render_density(coords, weights, SMALL)[0]
    # moved[i + 2, j - 1, k + 3] == volume[i, j, k] wherever both indices are on the grid.
    torch.testing.assert_close(moved[2:, :-1, 3:], volume[:-2, 1:, :-3], rtol=1e-10, atol=0)


def test_padded_batch_equals_individual_renders_and_padding_gets_no_gradient():
    rng = np.random.default_rng(4)
    first, w1 = random_atoms(rng, batch=1, atoms=5, half_width=8.0)
    second, w2 = random_atoms(rng, batch=1, atoms=3, half_width=8.0)
    coords = torch.zeros(2, 5, 3, dtype=torch.float64)
    coords[0], coords[1, :3] = torch.tensor(first[0]), torch.tensor(second[0])
    coords[1, 3] = 1e4  # padding far outside the box
    coords[1, 4] = float("nan")
    weights = torch.zeros(2, 5, dtype=torch.float64)
    weights[0], weights[1, :3] = torch.tensor(w1[0]), torch.tensor(w2[0])
    weights[1, 3:] = 99.0  # padding weights are ignored too
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])

    coords.requires_grad_(True)
    batch = render_density(coords, weights, SMALL, mask=mask)
    grad_map = torch.randn(batch.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (batch * grad_map).sum().backward()

    for b, (xyz, z) in enumerate([(first[0], w1[0]), (second[0], w2[0])]):
        alone = torch.tensor(xyz).requires_grad_(True)
        single = render_density(alone[None], torch.tensor(z), SMALL)
        (single[0] * grad_map[b]).sum().backward()
        torch.testing.assert_close(batch[b], single[0])
        torch.testing.assert_close(coords.grad[b, : len(xyz)], alone.grad)
    assert torch.all(coords.grad[1, 3:] == 0)


def test_masked_atoms_change_nothing():
    rng = np.random.default_rng(5)
    coords, weights = random_atoms(rng, batch=1, atoms=6, half_width=8.0)
    coords, weights = torch.tensor(coords), torch.tensor(weights)
    mask = torch.tensor([[True, False, True, True, False, True]])
    masked = render_density(coords, weights, SMALL, mask=mask)
    kept = render_density(coords[:, mask[0]], weights[:, mask[0]], SMALL)
    torch.testing.assert_close(masked, kept)


def test_atoms_outside_the_box_raise_with_the_extent():
    grid = MapGrid()  # 64 voxels × 2 Å; voxel centres from -64 to 62 Å
    coords = torch.zeros(1, 3, 3)
    coords[0, 0, 0], coords[0, 1, 0] = -70.6, 70.6
    with pytest.raises(ValueError, match=r"atoms span 141\.2 Å along x .*64 voxels × 2\.0 Å"):
        render_density(coords, torch.full((3,), 6.0), grid)
    render_density(coords, torch.full((3,), 6.0), grid, check_bounds=False)  # trusted callers may skip


@pytest.mark.parametrize("position, inside", [(62.0, True), (62.5, False), (-64.0, True), (-64.5, False)])
def test_box_is_the_voxel_centre_range(position, inside):
    coords = torch.zeros(1, 1, 3)
    coords[0, 0, 2] = position
    if inside:
        render_density(coords, torch.tensor([6.0]), MapGrid())
    else:
        with pytest.raises(ValueError, match="along z"):
            render_density(coords, torch.tensor([6.0]), MapGrid())


def test_bounds_check_ignores_padding_but_not_nan():
    coords = torch.zeros(1, 2, 3)
    coords[0, 1] = 1e6
    render_density(coords, torch.tensor([6.0, 6.0]), SMALL, mask=torch.tensor([[True, False]]))
    coords[0, 0, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        render_density(coords, torch.tensor([6.0, 6.0]), SMALL, mask=torch.tensor([[True, False]]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(coords=torch.zeros(2, 3)), r"\(B, N, 3\)"),
    (dict(coords=torch.zeros(1, 2, 3, dtype=torch.int64)), "float32 or float64"),
    (dict(weights=torch.ones(3)), r"\(2,\) or \(1, 2\)"),
    (dict(mask=torch.ones(1, 2)), "bool"),
])
def test_bad_inputs_raise(kwargs, match):
    args = dict(coords=torch.zeros(1, 2, 3), weights=torch.ones(2), grid=SMALL) | kwargs
    with pytest.raises(ValueError, match=match):
        render_density(**args)


def test_gradcheck_render_density():
    rng = np.random.default_rng(6)
    grid = MapGrid(size=5, apix=2.0, resolution=6.0)  # voxel centres -4 … 4 Å
    coords = torch.tensor(rng.uniform(-3.5, 3.5, size=(2, 3, 3)), requires_grad=True)
    weights = torch.tensor([[6.0, 8.0, 16.0], [7.0, 6.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    assert torch.autograd.gradcheck(lambda x: render_density(x, weights, grid, mask=mask), (coords,))


@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_gradcheck_trilinear_sum(chunk):
    g = torch.Generator().manual_seed(7)
    factors = [torch.rand(2, 3, d, dtype=torch.float64, generator=g, requires_grad=True) for d in (5, 4, 3)]
    assert torch.autograd.gradcheck(lambda *f: trilinear_sum(*f, chunk=chunk), factors)


def test_trilinear_sum_matches_einsum_for_every_chunk():
    g = torch.Generator().manual_seed(8)
    factors = [torch.rand(3, 10, d, generator=g, requires_grad=True) for d in (7, 6, 5)]
    grad_map = torch.randn(3, 7, 6, 5, generator=g)
    expected = torch.einsum("bai,baj,bak->bijk", *factors)
    expected_grads = torch.autograd.grad(expected, factors, grad_map)
    for chunk in (1, 3, 7, 100):
        volume = trilinear_sum(*factors, chunk=chunk)
        torch.testing.assert_close(volume, expected)
        for got, want in zip(torch.autograd.grad(volume, factors, grad_map), expected_grads):
            torch.testing.assert_close(got, want)


def test_backward_keeps_only_one_dimensional_profiles():
    # Memory O(N·D + D³): nothing saved for backward may be as large as N·D² (here 40·16² elements).
    B, N, D = 1, 40, 16
    grid = MapGrid(size=D)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        coords = torch.zeros(B, N, 3, requires_grad=True)
        render_density(coords, torch.full((N,), 6.0), grid)
    assert saved and max(saved) <= B * 3 * N * D


def test_map_grid():
    grid = MapGrid()
    assert (grid.size, grid.apix, grid.resolution) == (64, 2.0, 8.0)
    assert grid.box_length == 128.0
    assert grid.width == pytest.approx(8.0 / math.pi)
    assert grid.origin == (-64.0, -64.0, -64.0)
    axis = grid.axis(torch.float64)
    assert axis.shape == (64,) and axis[0] == -64.0 and axis[32] == 0.0 and axis[-1] == 62.0
    with pytest.raises(ValueError, match="size"):
        MapGrid(size=0)
    with pytest.raises(ValueError, match="apix"):
        MapGrid(apix=-1.0)


def test_crop_around_keeps_the_atoms_and_the_voxels_where_they_were():
    grid = MapGrid(size=32)
    rng = np.random.default_rng(12)
    coords, weights = random_atoms(rng, batch=1, atoms=40, half_width=8.0)
    coords = coords[0] + [6.0, -4.0, 2.0]

    def render(x, on):
        return render_density(torch.tensor(x)[None], torch.tensor(weights), on)[0].numpy()

    volume = render(coords, grid)
    cube, box, shift = crop_around(volume, grid, coords, margin=8.0)
    assert box.size < grid.size and box.apix == grid.apix and box.resolution == grid.resolution
    # Rendering in the cube's frame gives the voxels the whole box holds there.
    np.testing.assert_allclose(render(coords - shift, box), cube, rtol=1e-6, atol=1e-6)
    whole, same, none = crop_around(volume, grid, coords, margin=100.0)
    assert same == grid and whole.shape == volume.shape and not none.any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(9)
    coords, weights = random_atoms(rng, batch=2, atoms=50, half_width=10.0)
    coords, weights = torch.tensor(coords, dtype=torch.float32), torch.tensor(weights, dtype=torch.float32)
    cpu = coords.clone().requires_grad_(True)
    gpu = coords.cuda().requires_grad_(True)
    grid = MapGrid(size=24)
    v_cpu, v_gpu = render_density(cpu, weights, grid), render_density(gpu, weights.cuda(), grid)
    v_cpu.square().sum().backward()
    v_gpu.square().sum().backward()
    torch.testing.assert_close(v_gpu.cpu(), v_cpu, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gpu.grad.cpu(), cpu.grad, rtol=1e-3, atol=1e-3)


def test_atoms_in_a_corner_render_as_the_dense_sum_with_the_same_gradient():
    # The renderer contracts only the sub-box the atoms' cut profiles reach; the rest of the map must be exactly
    # zero and the map and its gradient those of the full dense contraction.
    grid = MapGrid(size=24, apix=2.0, resolution=8.0)
    rng = np.random.default_rng(3)
    coords = torch.tensor(rng.uniform(-22.0, -12.0, size=(2, 5, 3)), requires_grad=True)
    weights = torch.tensor(rng.choice([6.0, 7.0, 8.0], size=(2, 5)))
    volume = render_density(coords, weights, grid)
    axis = grid.axis(torch.float64)
    g = torch.exp(-((coords.transpose(1, 2)[..., None] - axis) / grid.width) ** 2)  # (B, 3, N, D)
    g = torch.where(g < PROFILE_CUTOFF, torch.zeros((), dtype=g.dtype), g)
    dense = torch.einsum("ba,bai,baj,bak->bijk", weights, g[:, 0], g[:, 1], g[:, 2])
    torch.testing.assert_close(volume, dense)
    assert float(volume[:, 12:].detach().abs().max()) == 0.0  # the far half of the box is never reached
    probe = torch.tensor(rng.normal(size=volume.shape))
    (grad,) = torch.autograd.grad((volume * probe).sum(), coords)
    (dense_grad,) = torch.autograd.grad((dense * probe).sum(), coords)
    torch.testing.assert_close(grad, dense_grad)


def test_atoms_that_reach_no_voxel_render_an_empty_map():
    volume = render_density(torch.full((1, 2, 3), 500.0), torch.tensor([6.0, 8.0]), SMALL, check_bounds=False)
    assert volume.shape == (1, 12, 12, 12) and float(volume.abs().max()) == 0.0
