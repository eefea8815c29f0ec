"""Diffusion schedule, noising, min-SNR loss and DDIM sampler (appendix A.1–A.2)."""

import dataclasses
import math

import pytest
import torch

from cryosampler.model.diffusion import (
    DIFFUSION_PRESETS,
    DiffusionConfig,
    add_noise,
    alpha_sigma,
    clamp_time,
    time_at_noise,
    cosine_c,
    ddim_sample,
    ddim_step,
    ddim_timesteps,
    denoise_loss,
    log_snr,
    min_snr_weight,
    posterior_weights,
    readout_time,
    sample_times,
    snr,
)

CONFIG = DiffusionConfig()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_schedule_ends_and_variance_preservation():
    alpha0, sigma0 = alpha_sigma(torch.tensor(0.0, dtype=torch.float64))
    alpha1, sigma1 = alpha_sigma(torch.tensor(1.0, dtype=torch.float64))
    assert 1 - 1e-4 < alpha0 < 1 and 1 - 1e-4 < sigma1 < 1
    assert 0 < sigma0 < 0.02 and 0 < alpha1 < 0.02
    # The clamp at t_max = 1 − s mirrors the t = 0 end.
    assert torch.isclose(alpha1, sigma0, rtol=1e-12) and torch.isclose(sigma1, alpha0, rtol=1e-12)
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    alpha, sigma = alpha_sigma(t)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(t), rtol=0, atol=1e-14)
    inside = t <= CONFIG.t_max
    torch.testing.assert_close(alpha[inside] ** 2, cosine_c(t[inside], CONFIG.s), rtol=0, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_snr_is_finite_and_strictly_decreasing(dtype):
    t = torch.linspace(0, CONFIG.t_max, 500, dtype=dtype)
    lam = log_snr(t)
    assert torch.all(lam[1:] < lam[:-1])
    assert torch.all(snr(t)[1:] < snr(t)[:-1])
    ends = log_snr(torch.tensor([0.0, 1.0], dtype=dtype))
    assert torch.all(torch.isfinite(ends)) and torch.all(torch.isfinite(snr(torch.tensor([0.0, 1.0], dtype=dtype))))
    # Symmetric and the same in every dtype: λ = 2 log cot(π/2 · s/(1+s)).
    lam_max = 2 * math.log(1 / math.tan(math.pi / 2 * CONFIG.s / (1 + CONFIG.s)))
    torch.testing.assert_close(ends, torch.tensor([lam_max, -lam_max], dtype=dtype), rtol=1e-5, atol=1e-5)
    # Beyond t_max the schedule is flat.
    assert log_snr(torch.tensor(1.0, dtype=dtype)) == log_snr(torch.tensor(CONFIG.t_max, dtype=dtype))


def test_config_validation_and_round_trip():
    assert DiffusionConfig(**dataclasses.asdict(CONFIG)) == CONFIG == DIFFUSION_PRESETS["paper"]
    assert (CONFIG.t_min, CONFIG.t_max) == (0.0, 1 - CONFIG.s)
    for bad in [dict(s=0.0), dict(s=1.0), dict(gamma=0.0), dict(n_steps=1), dict(weight_floor=-1.0),
                dict(weight_floor=float("nan"))]:
        with pytest.raises(ValueError):
            DiffusionConfig(**bad)


def test_add_noise_matches_eq1_and_is_pure_noise_at_t1():
    sigma_data = 2.5
    v0 = sigma_data * torch.randn(2, 24, 24, 24, generator=_gen(0))
    t = torch.tensor([1.0, 0.3])
    v_t, eps = add_noise(v0, t, sigma_data, _gen(1))
    alpha, sigma = alpha_sigma(t)
    torch.testing.assert_close(v_t, alpha[:, None, None, None] / sigma_data * v0 + sigma[:, None, None, None] * eps)
    assert abs(float(v_t[0].mean())) < 0.03 and abs(float(v_t[0].var()) - 1) < 0.03
    assert abs(float(eps.mean())) < 0.03 and abs(float(eps.var()) - 1) < 0.03


def test_add_noise_is_deterministic_and_leaves_global_rng_alone():
    v0 = torch.randn(3, 5, 5, 5, generator=_gen(0))
    t = torch.tensor([0.1, 0.5, 0.9])
    state = torch.get_rng_state()
    a, _ = add_noise(v0, t, 1.0, _gen(7))
    b, _ = add_noise(v0, t, 1.0, _gen(7))
    c, _ = add_noise(v0, t, 1.0, _gen(8))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert torch.equal(state, torch.get_rng_state())


def test_add_noise_does_not_care_about_d_and_is_differentiable():
    for side in (3, 8):
        v0 = torch.randn(2, side, side, side, dtype=torch.float64, requires_grad=True)
        v_t, _ = add_noise(v0, torch.tensor([0.2, 0.7]), torch.tensor(1.5), _gen(0))
        assert v_t.shape == v0.shape and v_t.dtype == torch.float64
        v_t.sum().backward()
        assert torch.all(torch.isfinite(v0.grad))


def test_min_snr_weight_caps_at_gamma():
    s = torch.tensor([0.0, 1.0, 10.0, 100.0, 6e3])
    torch.testing.assert_close(min_snr_weight(s, 10.0), torch.tensor([0.0, 1.0, 10.0, 10.0, 10.0]))
    assert float(min_snr_weight(snr(torch.tensor(0.0)))) == 10.0


def test_denoise_loss_zero_for_perfect_denoiser_and_matches_hand_computation():
    v0 = torch.randn(2, 4, 4, 4, generator=_gen(0), dtype=torch.float64)
    t = torch.tensor([0.0, 0.9], dtype=torch.float64)
    assert float(denoise_loss(v0, v0, t, 3.0)) == 0.0
    error = torch.zeros_like(v0)
    error[0, 0, 0, 0], error[1, 1, 2, 3] = 2.0, 1.0
    sigma_data = 3.0
    # min(SNR_0, 10) = 10; SNR_0.9 < 10.
    alpha, sigma = math.cos(0.908 / 1.008 * math.pi / 2), math.sin(0.908 / 1.008 * math.pi / 2)
    snr_09 = (alpha / sigma) ** 2
    expected = torch.tensor([10 * 4.0 / 64 / 9, snr_09 * 1.0 / 64 / 9], dtype=torch.float64)
    per_sample = denoise_loss(v0 + error, v0, t, sigma_data, reduction="none")
    torch.testing.assert_close(per_sample, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(denoise_loss(v0 + error, v0, t, sigma_data), expected.mean(), rtol=1e-12, atol=0)


def test_denoise_loss_scale_does_not_depend_on_d():
    t = torch.tensor([0.5])
    losses = [float(denoise_loss(torch.full((1, d, d, d), 0.3), torch.zeros(1, d, d, d), t, 1.0)) for d in (4, 9)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def test_sample_times_cover_every_stratum():
    batch = 16
    t = sample_times(batch, _gen(0))
    assert t.shape == (batch,) and torch.all((t > 0) & (t <= 1))
    stratum = torch.floor((1 - t) * batch).long()  # t in ((B−i−1)/B, (B−i)/B] ↔ stratum i
    assert sorted(stratum.tolist()) == list(range(batch))
    assert torch.equal(t, sample_times(batch, _gen(0))) and not torch.equal(t, sample_times(batch, _gen(1)))


def test_ddim_timesteps_endpoints_and_spacing():
    times = ddim_timesteps(100)
    assert times.shape == (100,) and times[0] == 1.0 and times[-1] == 0.0
    assert torch.all(times[1:] < times[:-1])
    torch.testing.assert_close(times[:-1] - times[1:], torch.full((99,), 1 / 99))


def test_ddim_step_identity_and_data_end():
    v_t = torch.randn(2, 5, 5, 5, generator=_gen(0), dtype=torch.float64)
    v0_hat = torch.randn(2, 5, 5, 5, generator=_gen(1), dtype=torch.float64)
    for t in (1.0, 0.5, 0.01):
        torch.testing.assert_close(ddim_step(v_t, v0_hat, t, t), v_t, rtol=1e-12, atol=1e-12)
    assert torch.equal(ddim_step(v_t, v0_hat, 0.01, 0.0), v0_hat)


def test_ddim_oracle_denoiser_follows_the_forward_marginals_and_ends_at_v0():
    config = DiffusionConfig(n_steps=10)
    v0 = torch.randn(2, 6, 6, 6, generator=_gen(0))
    seen_t, seen_v = [], []

    def oracle(v, t):
        seen_t.append(t.clone())
        seen_v.append(v.clone())
        return v0

    out = ddim_sample(oracle, v0.shape, _gen(1), config)
    torch.testing.assert_close(out, v0, rtol=0, atol=1e-5)
    times = ddim_timesteps(config.n_steps)
    assert len(seen_t) == config.n_steps - 1
    for k, t in enumerate(seen_t):
        assert t.shape == (2,) and torch.all(t == times[k])
    # With the true v0 the implied noise (eq. 10) stays that of V_{t_1}: V_{t_k} = α_k v0 + σ_k ε̂.
    alpha1, sigma1 = alpha_sigma(times[0])
    eps_hat = (seen_v[0] - alpha1 * v0) / sigma1
    for k, v in enumerate(seen_v):
        alpha, sigma = alpha_sigma(times[k])
        torch.testing.assert_close(v, alpha * v0 + sigma * eps_hat, rtol=0, atol=1e-4)


def test_ddim_sample_is_deterministic_per_generator():
    config = DIFFUSION_PRESETS["smoke"]

    def denoise(v, t):
        return 0.5 * v * (1 + t[:, None, None, None])

    state = torch.get_rng_state()
    a = ddim_sample(denoise, (2, 4, 4, 4), _gen(3), config)
    b = ddim_sample(denoise, (2, 4, 4, 4), _gen(3), config)
    c = ddim_sample(denoise, (2, 4, 4, 4), _gen(4), config)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert torch.equal(state, torch.get_rng_state())


def test_readout_time_is_the_cleanest_training_level():
    t = readout_time(3)
    assert t.shape == (3,) and torch.all(t == 0)
    assert torch.all(log_snr(t) == log_snr(torch.linspace(0, 1, 101)).max())
    assert torch.all(log_snr(t)[0] >= log_snr(sample_times(64, _gen(0))))


def test_time_at_noise_inverts_the_schedule():
    t = torch.linspace(0.0, 0.99, 50, dtype=torch.float64)
    alpha, sigma = alpha_sigma(t)
    torch.testing.assert_close(time_at_noise(sigma / alpha), clamp_time(t), atol=1e-9, rtol=0)
    assert float(time_at_noise(0.0)) == 0.0
    assert float(time_at_noise(1e9)) == pytest.approx(float(clamp_time(torch.tensor(1.0))))


def test_the_weight_floor_raises_only_the_weights_below_it():
    v0 = torch.ones(3, 4, 4, 4)
    v0_hat = torch.zeros(3, 4, 4, 4)
    t = torch.tensor([0.1, 0.6, 0.99])
    plain = denoise_loss(v0_hat, v0, t, 1.0, CONFIG, reduction="none")
    floored = denoise_loss(v0_hat, v0, t, 1.0, dataclasses.replace(CONFIG, weight_floor=1.0), reduction="none")
    torch.testing.assert_close(plain, min_snr_weight(snr(t, CONFIG), CONFIG.gamma))  # squared error 1 per voxel
    torch.testing.assert_close(floored, plain.clamp(min=1.0))
    assert float(plain[2]) < 1e-3 and float(floored[2]) == 1.0 and float(floored[0]) == float(plain[0])


def _brute_force_posterior(v_t, t, candidates, sigma_data, config):
    """softmax over m of −‖v_t − α_t V_m / σ_data‖² / 2σ_t², one (B, M, D, D, D) set, in float64."""
    alpha, sigma = alpha_sigma(t.double(), config)
    distance = ((v_t.double()[:, None] - alpha[:, None, None, None, None] * candidates.double() / sigma_data) ** 2)
    return torch.softmax(-distance.sum((2, 3, 4)) / (2 * sigma[:, None] ** 2), dim=1)


def test_posterior_weights_both_forms_match_the_definition_computed_directly():
    generator = torch.Generator().manual_seed(0)
    shared = torch.randn((3, 6, 6, 6), generator=generator) * 2.0  # (M, D, D, D), map units
    per_item = torch.randn((2, 3, 6, 6, 6), generator=generator) * 2.0  # (B, M, D, D, D)
    v_t = torch.randn((2, 6, 6, 6), generator=generator)
    t = torch.tensor([0.3, 0.8])
    config = DiffusionConfig(n_steps=25)
    expected = _brute_force_posterior(v_t, t, shared.expand(2, -1, -1, -1, -1), 2.0, config)
    # Shared candidates (the expanded form), in float64 as the ideal denoiser asks.
    weights = posterior_weights(v_t, t, shared, 2.0, config, torch.float64)
    assert weights.shape == (2, 3) and weights.dtype == torch.float64
    torch.testing.assert_close(weights, expected)
    # Per-item candidates (the residual form): exact in float64, to float32 rounding in float32.
    torch.testing.assert_close(posterior_weights(v_t, t, per_item, 2.0, config, torch.float64),
                               _brute_force_posterior(v_t, t, per_item, 2.0, config))
    single = posterior_weights(v_t, t, per_item, torch.tensor(2.0), config)
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), _brute_force_posterior(v_t, t, per_item, 2.0, config),
                               rtol=1e-5, atol=1e-5)
    # The two forms agree on the same candidates.
    torch.testing.assert_close(posterior_weights(v_t, t, shared.expand(2, -1, -1, -1, -1), 2.0, config,
                                                 torch.float64), weights)


def test_posterior_weights_are_differentiable_and_refuse_mismatched_candidates():
    generator = torch.Generator().manual_seed(1)
    v_t = torch.randn((2, 4, 4, 4), generator=generator)
    candidates = torch.randn((2, 3, 4, 4, 4), generator=generator, requires_grad=True)
    weights = posterior_weights(v_t, torch.tensor([0.5, 0.9]), candidates)
    weights[:, 0].sum().backward()
    assert candidates.grad is not None and bool(candidates.grad.abs().sum() > 0)
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    for bad in (torch.zeros(3, 5, 4, 4), torch.zeros(3, 2, 4, 4, 4), torch.zeros(4, 4, 4)):
        with pytest.raises(ValueError, match="candidates must be"):
            posterior_weights(v_t, torch.tensor([0.5, 0.9]), bad)
