"""Map-space diffusion (appendix A.1–A.2): cosine VP schedule, noising, min-SNR loss, DDIM sampler.

Maps are tensors (B, D, D, D) (axes x, y, z), but nothing here depends on D or on the number of map
axes: per-sample quantities have shape (B,) and are broadcast over every trailing axis.

Units. ``V_0`` and ``V̂_0`` are in map units; ``v̂_0 = V̂_0 / σ_data`` (eq. 9) and ``V_t`` (eq. 1) are
normalised, i.e. of order one.

Time clamp. Every schedule quantity clamps t to [t_min, t_max] = [0, 1 − s]:

* at t = 0 the offset s already keeps the schedule off the data end: σ_0 = sin(π/2 · s/(1+s)) ≈ 0.0125,
  SNR_0 ≈ 6.4e3, so no clamp is needed there (t_min = 0 only rejects t < 0);
* at t = 1, eq. 2 gives cos²(π/2), which is 0 in exact arithmetic and rounding noise in floating point
  (≈ 2e-15 in float32, ≈ 4e-33 in float64), so SNR_1 would be ~0 and depend on the dtype. Clamping at
  t_max = 1 − s mirrors the t = 0 end: α_{t_max} = σ_0 and σ_{t_max} = α_0, hence
  log SNR spans the symmetric interval [−λ, λ], λ = 2 log cot(π/2 · s/(1+s)) ≈ 8.77 for s = 0.008.
  Only the last s = 0.8 % of the time axis is flattened.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from tqdm.auto import tqdm

__all__ = [
    "DiffusionConfig",
    "DIFFUSION_PRESETS",
    "cosine_c",
    "clamp_time",
    "alpha_sigma",
    "log_snr",
    "snr",
    "add_noise",
    "min_snr_weight",
    "denoise_loss",
    "posterior_weights",
    "sample_times",
    "ddim_timesteps",
    "ddim_step",
    "ddim_sample",
    "readout_time",
]


@dataclass(frozen=True)
class DiffusionConfig:
    """Noise schedule, loss weighting and sampler length. Named presets in ``DIFFUSION_PRESETS``."""

    s: float = 0.008  # cosine-schedule offset (eq. 2, Nichol & Dhariwal 2021); keeps σ_0 > 0
    gamma: float = 10.0  # min-SNR cap γ (eq. 5, Hang et al. 2023)
    # Lower bound of eq. 5's weight, beyond the paper (0: the paper's min(SNR, γ)). Near t = 1, where issue 19's
    # diagnostic finds sampling's choice of state made, min(SNR, γ) is about 1e-4: the denoiser is barely
    # trained there. A floor gives those times weight.
    weight_floor: float = 0.0
    # K timesteps t_1 = 1 > … > t_K = 0 (A.2), i.e. K − 1 denoiser calls: the paper's 100, stored with every model
    # and used by the notebooks. `cryosampler sample` takes fewer by default (commands/sample.py,
    # DEFAULT_DDIM_STEPS, says why).
    n_steps: int = 100

    def __post_init__(self):
        if not 0.0 < self.s < 1.0:
            raise ValueError(f"DiffusionConfig.s must lie in (0, 1) so that σ_0 > 0 and t_max > 0, got {self.s}")
        if not self.gamma > 0.0:
            raise ValueError(f"DiffusionConfig.gamma must be positive, got {self.gamma}")
        if not self.weight_floor >= 0.0:  # a negative floor would silently do nothing; NaN is refused too
            raise ValueError(f"DiffusionConfig.weight_floor must be 0 or more, got {self.weight_floor}")
        if self.n_steps < 2:
            raise ValueError(f"DiffusionConfig.n_steps must be at least 2 (t_1 = 1 and t_K = 0), got {self.n_steps}")

    @property
    def t_min(self) -> float:
        """Lower time clamp: 0, since s > 0 already keeps σ_0 > 0 (see the module docstring)."""
        return 0.0

    @property
    def t_max(self) -> float:
        """Upper time clamp 1 − s: mirrors t = 0, so SNR(t_max) = 1 / SNR(0) (see the module docstring)."""
        return 1.0 - self.s


DIFFUSION_PRESETS = {
    # A.1–A.2 as written.
    "paper": DiffusionConfig(),
    # Tests and fast notebooks: same schedule, a short sampler.
    "smoke": DiffusionConfig(n_steps=5),
}


def _per_sample(x: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """A scalar or (B,) quantity as ``like``'s dtype/device, shaped to broadcast over ``like`` (B, ...)."""
    x = torch.as_tensor(x, dtype=like.dtype, device=like.device)
    if x.ndim > 1 or (x.ndim == 1 and x.shape[0] != like.shape[0]):
        raise ValueError(f"expected a scalar or a ({like.shape[0]},) tensor, got shape {tuple(x.shape)}")
    return x.reshape(x.shape + (1,) * (like.ndim - x.ndim))


def cosine_c(t: torch.Tensor, s: float = 0.008) -> torch.Tensor:  # eq. 2
    """c(t) = cos²((t + s)/(1 + s) · π/2), unclamped; t any shape, dimensionless in [0, 1]."""
    return torch.cos((t + s) / (1 + s) * (math.pi / 2)) ** 2


def clamp_time(t: torch.Tensor, config: DiffusionConfig = DiffusionConfig()) -> torch.Tensor:
    """t clamped to [config.t_min, config.t_max] = [0, 1 − s] (why: see the module docstring)."""
    return t.clamp(config.t_min, config.t_max)


def alpha_sigma(t: torch.Tensor | float,
                config: DiffusionConfig = DiffusionConfig()) -> tuple[torch.Tensor, torch.Tensor]:  # eq. 3
    """α_t = √c(t), σ_t = √(1 − c(t)) of the clamped t; t any shape → two tensors of t's shape.

    Both lie in [σ_0, α_0] ≈ [0.0125, 0.99992] for s = 0.008, and α² + σ² = 1.
    """
    t = torch.as_tensor(t)
    t = clamp_time(t if t.is_floating_point() else t.to(torch.get_default_dtype()), config)
    # Same as √c and √(1 − c) for an angle in [0, π/2], without the cancellation in 1 − c near t = 0.
    angle = (t + config.s) / (1 + config.s) * (math.pi / 2)
    return torch.cos(angle), torch.sin(angle)


def time_at_noise(ratio: torch.Tensor | float, config: DiffusionConfig = DiffusionConfig()) -> torch.Tensor:
    """The t at which σ_t / α_t = ``ratio`` ≥ 0 (eq. 3 inverted: σ/α = tan of the schedule's angle), clamped
    like every t; any shape → the same shape."""
    ratio = torch.as_tensor(ratio)
    ratio = ratio if ratio.is_floating_point() else ratio.to(torch.get_default_dtype())
    angle = torch.atan(ratio.clamp(min=0.0))
    return clamp_time(angle * 2 / math.pi * (1 + config.s) - config.s, config)


def log_snr(t: torch.Tensor | float, config: DiffusionConfig = DiffusionConfig()) -> torch.Tensor:
    """log SNR_t = log(α_t² / σ_t²) of the clamped t, in [−λ, λ] with λ ≈ 8.77; the encoder's noise input."""
    alpha, sigma = alpha_sigma(t, config)
    return 2 * (torch.log(alpha) - torch.log(sigma))


def snr(t: torch.Tensor | float, config: DiffusionConfig = DiffusionConfig()) -> torch.Tensor:
    """SNR_t = α_t² / σ_t² of the clamped t: finite, positive, strictly decreasing on [0, 1 − s]."""
    return torch.exp(log_snr(t, config))


def add_noise(v0: torch.Tensor, t: torch.Tensor, sigma_data: torch.Tensor | float, generator: torch.Generator,
              config: DiffusionConfig = DiffusionConfig()) -> tuple[torch.Tensor, torch.Tensor]:  # eq. 1
    """V_t = α_t / σ_data · V_0 + σ_t · ε, ε ~ N(0, I) drawn from ``generator``.

    Parameters
    ----------
    v0 : (B, D, D, D) clean maps V_0, map units.
    t : (B,) times in [0, 1] (clamped by the schedule).
    sigma_data : scalar or (B,), map units: the standard deviation of the training maps.
    generator : on ``v0``'s device.

    Returns
    -------
    v_t : (B, D, D, D) normalised noisy maps.
    eps : (B, D, D, D) the noise ε that was drawn.
    """
    alpha, sigma = alpha_sigma(_per_sample(t, v0), config)
    eps = torch.randn(v0.shape, generator=generator, dtype=v0.dtype, device=v0.device)
    return alpha / _per_sample(sigma_data, v0) * v0 + sigma * eps, eps


def min_snr_weight(snr: torch.Tensor, gamma: float = 10.0) -> torch.Tensor:  # eq. 5, Hang et al. 2023
    """min(SNR, γ), elementwise."""
    return snr.clamp(max=gamma)


def denoise_loss(v0_hat: torch.Tensor, v0: torch.Tensor, t: torch.Tensor, sigma_data: torch.Tensor | float,
                 config: DiffusionConfig = DiffusionConfig(),
                 reduction: Literal["mean", "none"] = "mean") -> torch.Tensor:  # eq. 5
    """min(SNR_t, γ) / σ_data² · ‖V̂_0 − V_0‖², averaged over the batch (the expectation of eq. 5); the weight is
    raised to ``config.weight_floor`` where it falls below (0, the default, keeps eq. 5).

    Normalisation choice: ‖·‖² is the *mean* over voxels, not the sum, so the loss scale does not depend
    on the grid side D (the sum would grow as D³).

    Parameters
    ----------
    v0_hat, v0 : (B, D, D, D) denoised and clean maps V̂_0, V_0, both in map units (not divided by σ_data).
    t : (B,) times the noisy inputs were made at.
    sigma_data : scalar or (B,), map units.
    reduction : "mean" → scalar; "none" → (B,) per-sample terms.
    """
    if v0_hat.shape != v0.shape or v0.ndim < 2:
        raise ValueError(f"v0_hat {tuple(v0_hat.shape)} and v0 {tuple(v0.shape)} must be equal (B, ...) shapes")
    weight = min_snr_weight(snr(torch.as_tensor(t, dtype=v0.dtype, device=v0.device), config), config.gamma)
    if config.weight_floor > 0:  # beyond the paper; 0 keeps eq. 5 exactly
        weight = weight.clamp(min=config.weight_floor)
    sq_error = ((v0_hat - v0) ** 2).flatten(1).mean(1)  # (B,)
    per_sample = weight * sq_error / torch.as_tensor(sigma_data, dtype=v0.dtype, device=v0.device) ** 2
    assert per_sample.shape == (v0.shape[0],), per_sample.shape
    if reduction == "none":
        return per_sample
    if reduction == "mean":
        return per_sample.mean()
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def posterior_weights(v_t: torch.Tensor, t: torch.Tensor, candidates: torch.Tensor,
                      sigma_data: torch.Tensor | float = 1.0, config: DiffusionConfig = DiffusionConfig(),
                      dtype: torch.dtype | None = None) -> torch.Tensor:
    """w_m ∝ exp(−‖v_t − α_t V_m / σ_data‖² / 2σ_t²), normalised over M candidate clean maps V_m: the posterior
    over which candidate v_t was noised from (eq. 1, as :func:`add_noise` noises), the candidates equally likely.

    The mixture denoiser weighs its G renders with it (``CryoSampler.mixture``, M = G), the ideal denoiser the
    training maps (``evaluation.ideal_denoiser``).

    Parameters
    ----------
    v_t : (B, ...) normalised noisy maps, e.g. (B, D, D, D).
    t : (B,) times.
    candidates : (M, ...) the same for every batch item, or (B, M, ...) one set per item; trailing axes as v_t's;
        map units.
    sigma_data : scalar, map units (1: candidates already normalised).
    dtype : the arithmetic's and the result's dtype; None: v_t's. Gradients flow through either.

    Returns
    -------
    (B, M) weights, each row summing to 1.

    The squared distance takes one of two forms, by the candidates' shape:

    * shared (M, ...): ‖v‖² − 2a v·V_m + a²‖V_m‖², a = α_t / σ_data, as one (B, V) @ (V, M) product that never
      holds B·M maps; ‖v‖² is the same for every m and drops out. The two terms left are sums over all V voxels
      that cancel down to order σ_t², so this form needs ``dtype=torch.float64``: in float32 their rounding
      alone outweighs the differences between candidates at small σ_t (the ideal denoiser's 64³ maps).
    * per item (B, M, ...): the residual v − α_t V_m / σ_data, squared and summed. The candidates already hold
      B·M maps, so it costs no more memory; nothing cancels, so float32 suffices. This is the mixture's training
      arithmetic, operation for operation, so that training's weights and gradients are what they were before
      this function existed.
    """
    B, per_item = len(v_t), candidates.ndim == v_t.ndim + 1
    if candidates.ndim - per_item != v_t.ndim or candidates.shape[1 + per_item:] != v_t.shape[1:] \
            or (per_item and len(candidates) != B):
        raise ValueError(f"candidates must be (M, ...) or ({B}, M, ...) with v_t's trailing shape "
                         f"{tuple(v_t.shape[1:])}, got {tuple(candidates.shape)}")
    dtype = v_t.dtype if dtype is None else dtype
    sigma_data = torch.as_tensor(sigma_data, dtype=dtype, device=v_t.device)
    alpha, sigma = alpha_sigma(t.to(dtype), config)  # (B,)
    flat_v = v_t.reshape(B, -1).to(dtype)  # (B, V)
    if per_item:
        flat_c = candidates.reshape(B, candidates.shape[1], -1).to(dtype)  # (B, M, V)
        residual = flat_v[:, None] - alpha[:, None, None] * flat_c / sigma_data  # (B, M, V)
        logits = -residual.square().sum(-1) / (2 * sigma[:, None] ** 2)  # (B, M)
    else:
        flat_c = candidates.reshape(len(candidates), -1).to(dtype)  # (M, V)
        scale = (alpha / sigma_data)[:, None]  # (B, 1)
        cross = flat_v @ flat_c.T  # (B, M)
        norms = (flat_c ** 2).sum(1)  # (M,)
        logits = (2 * scale * cross - scale ** 2 * norms[None]) / (2 * sigma[:, None] ** 2)  # (B, M)
    return torch.softmax(logits, dim=1)


def sample_times(batch_size: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Training times (B,) in (0, 1]: one uniform draw per stratum ((B − i − 1)/B, (B − i)/B], shuffled.

    Stratifying makes every batch cover all noise levels; shuffling keeps the level independent of the
    batch position (and so of which protein sits there). On ``generator``'s device.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = generator.device
    stratum = torch.randperm(batch_size, generator=generator, device=device).to(dtype)
    u = torch.rand(batch_size, generator=generator, dtype=dtype, device=device)  # [0, 1)
    return 1 - (stratum + u) / batch_size


def ddim_timesteps(n_steps: int = 100, dtype: torch.dtype = torch.float32,
                   device: torch.device | str | None = None) -> torch.Tensor:  # A.2
    """(K,) times linear from t_1 = 1 down to t_K = 0, both ends exact."""
    if n_steps < 2:
        raise ValueError(f"n_steps must be at least 2, got {n_steps}")
    return torch.linspace(1.0, 0.0, n_steps, dtype=dtype, device=device)


def ddim_step(v_t: torch.Tensor, v0_hat: torch.Tensor, t_now: torch.Tensor | float, t_next: torch.Tensor | float,
              config: DiffusionConfig = DiffusionConfig()) -> torch.Tensor:  # eq. 10–11
    """One deterministic DDIM update V_{t_k} → V_{t_{k+1}}.

    Parameters
    ----------
    v_t : (B, D, D, D) current normalised map V_{t_k}.
    v0_hat : (B, D, D, D) normalised denoised map v̂_0 = V̂_0 / σ_data (eq. 9).
    t_now, t_next : scalars or (B,).

    t_next = 0 is the data end of the sampler: DDIM's boundary ᾱ_0 = 1 (Song et al. 2020a), i.e.
    α = 1, σ = 0, so the last update returns v̂_0 itself. Following eq. 11 with the schedule's own
    σ_0 ≈ 0.0125 instead would leave 1.25 % of the implied noise in the "fully denoised" V_{t_K}.
    With t_next = t_now > 0 the step is the identity.
    """
    alpha_now, sigma_now = alpha_sigma(_per_sample(t_now, v_t), config)
    eps_hat = (v_t - alpha_now * v0_hat) / sigma_now  # eq. 10
    t_next = _per_sample(t_next, v_t)
    alpha_next, sigma_next = alpha_sigma(t_next, config)
    at_data = t_next <= 0
    alpha_next = torch.where(at_data, torch.ones_like(alpha_next), alpha_next)
    sigma_next = torch.where(at_data, torch.zeros_like(sigma_next), sigma_next)
    return alpha_next * v0_hat + sigma_next * eps_hat  # eq. 11


def ddim_sample(denoise_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape: tuple[int, ...],
                generator: torch.Generator, config: DiffusionConfig = DiffusionConfig(), progress: bool = False,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:  # A.2, eq. 9–11
    """Run the K-step DDIM sampler from pure noise; returns V_{t_K} (B, D, D, D), normalised.

    Parameters
    ----------
    denoise_fn : ``(v_t (B, D, D, D), t (B,)) → v̂_0 (B, D, D, D)``, the *normalised* denoised map of
        eq. 9, i.e. V̂_0 / σ_data (divide the rendered map by σ_data before returning it). ``t`` is the
        raw grid time; condition the network on ``log_snr(t, config)``.
    shape : (B, D, D, D).
    generator : draws V_{t_1} ~ N(0, I); its device is the output's device.
    progress : show a tqdm bar.

    The K = ``config.n_steps`` times t_1 = 1 > … > t_K = 0 bound K − 1 updates, so ``denoise_fn`` is
    called K − 1 times, at t_1 … t_{K−1}; the last update lands on t_K = 0, where it returns v̂_0 (see
    :func:`ddim_step`). The read-out of eq. 12 is the caller's: f_θ(V_{t_K}) at :func:`readout_time`.
    Gradients are kept; call under ``torch.no_grad()`` for inference.
    """
    times = ddim_timesteps(config.n_steps, dtype=dtype, device=generator.device)  # (K,)
    v = torch.randn(shape, generator=generator, dtype=dtype, device=generator.device)  # V_{t_1} ~ N(0, I)
    batch_size = shape[0]
    for k in tqdm(range(config.n_steps - 1), disable=not progress, desc="DDIM"):
        v0_hat = denoise_fn(v, times[k].expand(batch_size))  # eq. 9
        if v0_hat.shape != v.shape:
            raise ValueError(f"denoise_fn returned shape {tuple(v0_hat.shape)}, expected {tuple(v.shape)}")
        v = ddim_step(v, v0_hat, times[k], times[k + 1], config)  # eq. 10–11
    return v


def readout_time(batch_size: int, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> torch.Tensor:  # eq. 12
    """(B,) zeros: the "t → 0" conditioning of the final read-out X_final = f_θ(V_{t_K}, SNR_{t→0}, X_ref).

    t = 0 gives the largest SNR of the schedule (log SNR ≈ 8.77), the cleanest level seen in training;
    SNR = ∞ itself was never seen and has no finite log-SNR embedding.
    """
    return torch.zeros(batch_size, dtype=dtype, device=device)
