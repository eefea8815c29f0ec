"""Realistic maps (degrade.py) against analytic references: Gaussian widths, pure frequencies, measured SNR."""

import math

import numpy as np
import pytest

from cryosampler.physics.degrade import DegradeConfig, add_noise_at_snr, b_factor_blur, degrade, low_pass, signal_mask

D, APIX = 64, 1.0  # 64 Å box


def _gaussian(variance: float, centre=(31.3, 32.6, 30.8)) -> np.ndarray:
    """(D, D, D) unit-integral 3D Gaussian of the given variance (Å² per axis), sampled at APIX, off-grid centre."""
    x = np.arange(D) * APIX
    r2 = sum(np.meshgrid(*((x - c) ** 2 for c in centre), indexing="ij"))
    return np.exp(-r2 / (2 * variance)) / (2 * math.pi * variance) ** 1.5 * APIX**3


def _plane_wave(wavelength: float, axis: int) -> np.ndarray:
    """(D, D, D) cos(2π x / wavelength) along ``axis``; wavelength (Å) must divide the box."""
    x = np.arange(D) * APIX
    shape = [1, 1, 1]
    shape[axis] = D
    return np.broadcast_to(np.cos(2 * math.pi * x / wavelength).reshape(shape), (D,) * 3).astype(np.float32)


@pytest.mark.parametrize("b_factor", [50.0, 200.0])
def test_b_factor_widens_a_gaussian_by_b_over_8_pi_squared(b_factor):
    sigma2 = 4.0  # Å²
    blurred = b_factor_blur(_gaussian(sigma2).astype(np.float32), APIX, b_factor)
    expected = _gaussian(sigma2 + b_factor / (8 * math.pi**2))
    assert blurred.dtype == np.float32
    assert np.abs(blurred - expected).max() < 1e-4 * expected.max()


def test_b_factor_zero_leaves_the_map_unchanged():
    volume = _gaussian(4.0).astype(np.float32)
    np.testing.assert_array_equal(b_factor_blur(volume, APIX, 0.0), volume)


def test_low_pass_removes_finer_than_the_resolution_and_keeps_coarser():
    fine, coarse = _plane_wave(4.0, axis=0), _plane_wave(16.0, axis=2)  # 0.25 and 0.0625 1/Å
    out = low_pass(fine + coarse, APIX, resolution=8.0)  # cut-off 0.125 1/Å, edge from 0.1 1/Å
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, coarse, atol=1e-5)


def test_low_pass_edge_is_soft():
    # A wave in the edge band (0.8-1.0 of 1/resolution) is attenuated, not cut: the raised cosine at 0.9 is 0.5.
    wave = _plane_wave(64 / 7, axis=1)  # 0.109375 1/Å
    resolution = 1 / (0.109375 / 0.9)
    np.testing.assert_allclose(low_pass(wave, APIX, resolution), 0.5 * wave, atol=1e-5)


def _blob_map() -> np.ndarray:
    blob = _gaussian(64.0)  # σ 8 Å: ~30,000 voxels in the mask
    return (blob / blob.max()).astype(np.float32)


@pytest.mark.parametrize("snr", [1.0, 0.3])
def test_measured_snr_inside_the_mask_matches_the_target(snr):
    clean = _blob_map()
    mask = signal_mask(clean)
    noise = add_noise_at_snr(clean, snr, np.random.default_rng(0)) - clean
    measured = clean[mask].var() / noise.var()
    assert abs(measured / snr - 1) < 0.03
    assert abs(clean[mask].var() / noise[mask].var() / snr - 1) < 0.03  # inside the mask alone too


def test_noise_is_set_by_the_generator():
    clean = _blob_map()
    first = add_noise_at_snr(clean, 1.0, np.random.default_rng(7))
    np.testing.assert_array_equal(add_noise_at_snr(clean, 1.0, np.random.default_rng(7)), first)
    assert not np.allclose(add_noise_at_snr(clean, 1.0, np.random.default_rng(8)), first)


def test_infinite_snr_returns_the_map_unchanged():
    clean = _blob_map()
    np.testing.assert_array_equal(add_noise_at_snr(clean, math.inf, np.random.default_rng(0)), clean)
    np.testing.assert_array_equal(degrade(clean, APIX, DegradeConfig(), np.random.default_rng(0)), clean)


def test_degrade_applies_blur_then_limit_then_noise():
    clean = _blob_map()
    config = DegradeConfig(b_factor=100.0, resolution=6.0, snr=0.3)
    expected = add_noise_at_snr(low_pass(b_factor_blur(clean, APIX, 100.0), APIX, 6.0), 0.3, np.random.default_rng(3))
    np.testing.assert_array_equal(degrade(clean, APIX, config, np.random.default_rng(3)), expected)


@pytest.mark.parametrize("call, message", [
    (lambda v: b_factor_blur(v, APIX, -50.0), "B-factor -50.0"),
    (lambda v: low_pass(v, APIX, 0.0), "resolution 0.0"),
    (lambda v: add_noise_at_snr(v, 0.0, np.random.default_rng(0)), "SNR 0.0"),
    (lambda v: add_noise_at_snr(v, -1.0, np.random.default_rng(0)), "SNR -1.0"),
    (lambda v: add_noise_at_snr(v, 1.0, np.random.default_rng(0), mask=np.zeros(v.shape, bool)), "mask is empty"),
    (lambda v: add_noise_at_snr(np.zeros_like(v), 1.0, np.random.default_rng(0)), "mask is empty"),
    (lambda v: low_pass(v, 0.0, 6.0), "apix=0.0"),
    (lambda v: DegradeConfig(b_factor=-1.0), "B-factor -1.0"),
    (lambda v: DegradeConfig(resolution=0.0), "resolution 0.0"),
    (lambda v: DegradeConfig(snr=0.0), "SNR 0.0"),
])
def test_bad_arguments_raise_one_line_value_errors(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call(_blob_map())
    assert "\n" not in str(error.value)
