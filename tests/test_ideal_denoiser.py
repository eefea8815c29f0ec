import math

import torch

from cryosampler.evaluation.ideal_denoiser import (Recorder, ideal_denoiser, nearest_map_denoiser, state_coordinate,
                                                   switched_denoiser)
from cryosampler.model.diffusion import DiffusionConfig, add_noise, ddim_sample, posterior_weights

CONFIG = DiffusionConfig(n_steps=25)


def _blob(centre: tuple[float, float, float], size: int = 16, width: float = 1.5) -> torch.Tensor:
    axis = torch.arange(size, dtype=torch.float32)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) / width ** 2)


def _two_states() -> torch.Tensor:
    """Two maps of one 'atom' 8 voxels apart (no overlap), normalised to unit voxel standard deviation."""
    maps = torch.stack([_blob((4, 8, 8)), _blob((12, 8, 8))])
    return maps / maps.std()


def test_the_ideal_denoiser_is_the_mean_under_the_shared_posterior_weights_in_float64():
    generator = torch.Generator().manual_seed(0)
    maps = torch.randn((3, 6, 6, 6), generator=generator)
    v_t = torch.randn((2, 6, 6, 6), generator=generator)
    t = torch.tensor([0.3, 0.8])
    weights = posterior_weights(v_t, t, maps, 1.0, CONFIG, torch.float64)  # tested in test_diffusion
    assert torch.equal(ideal_denoiser(maps, CONFIG)(v_t, t), torch.einsum("bm,mxyz->bxyz", weights.float(), maps))
    assert torch.equal(nearest_map_denoiser(maps, CONFIG)(v_t, t), maps[weights.argmax(1)])


def test_the_posterior_picks_the_state_a_lightly_noised_map_came_from_and_hesitates_in_pure_noise():
    maps = _two_states()
    generator = torch.Generator().manual_seed(1)
    v_t, _ = add_noise(maps[[1]], torch.tensor([0.2]), 1.0, generator, CONFIG)
    # The denoised map's coordinate between the states is the weight of state b.
    assert float(state_coordinate(ideal_denoiser(maps, CONFIG)(v_t, torch.tensor([0.2])), *maps)[0]) > 0.999
    noise = torch.randn((64, 16, 16, 16), generator=generator)
    coordinate = state_coordinate(ideal_denoiser(maps, CONFIG)(noise, torch.ones(64)), *maps)
    assert abs(float(coordinate.mean()) - 0.5) < 0.05


def test_ddim_with_the_ideal_denoiser_reaches_both_far_apart_states():
    maps = _two_states()
    generator = torch.Generator().manual_seed(2)
    final = ddim_sample(ideal_denoiser(maps, CONFIG), (64, 16, 16, 16), generator, CONFIG)
    distance = torch.cdist(final.reshape(64, -1), maps.reshape(2, -1))  # (64, 2)
    nearest = distance.argmin(1)
    # Every sample ends on a training map, and both are reached in about equal numbers.
    assert float(distance.min(1).values.max()) < 1e-3 * float(maps.reshape(2, -1).norm(dim=1).min())
    assert 0.3 < float(nearest.float().mean()) < 0.7


def test_the_nearest_map_denoiser_returns_training_maps_and_the_switch_follows_the_time():
    maps = _two_states()
    generator = torch.Generator().manual_seed(3)
    v_t = torch.randn((5, 16, 16, 16), generator=generator)
    out = nearest_map_denoiser(maps, CONFIG)(v_t, torch.full((5,), 0.5))
    assert all(any(torch.equal(o, m) for m in maps) for o in out)
    zero = lambda v, t: torch.zeros_like(v)  # a stand-in for the learned denoiser
    one = lambda v, t: torch.ones_like(v)
    switched = switched_denoiser(zero, one, t_switch=0.6)
    assert float(switched(v_t, torch.full((5,), 0.65)).mean()) == 1.0
    assert float(switched(v_t, torch.full((5,), 0.55)).mean()) == 0.0


def test_state_coordinate_is_zero_at_a_one_at_b_and_a_half_between():
    a, b = _two_states()
    coordinate = state_coordinate(torch.stack([a, b, (a + b) / 2, 2 * b - a]), a, b)
    torch.testing.assert_close(coordinate, torch.tensor([0.0, 1.0, 0.5, 2.0], dtype=torch.float64))


def test_the_recorder_keeps_one_row_per_step_and_changes_nothing():
    maps = _two_states()
    recorder = Recorder(ideal_denoiser(maps, CONFIG),
                        lambda v, t, v0: {"coordinate": float(state_coordinate(v0, *maps).mean())})
    plain = ddim_sample(ideal_denoiser(maps, CONFIG), (4, 16, 16, 16), torch.Generator().manual_seed(4), CONFIG)
    recorded = ddim_sample(recorder, (4, 16, 16, 16), torch.Generator().manual_seed(4), CONFIG)
    assert torch.equal(plain, recorded)
    assert [round(row["t"], 6) for row in recorder.rows] == [round(1 - k / 24, 6) for k in range(24)]
    assert all(math.isfinite(row["coordinate"]) for row in recorder.rows)
