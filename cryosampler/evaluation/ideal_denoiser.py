"""Where sampling's choice of state is made: the ideal denoiser of a finite training set, and the denoisers that
mix it with a learned one (issue 19's diagnostic, ``benchmarks/ideal_denoiser.py``).

For training maps v_1 … v_M (normalised, V / σ_data) drawn with equal weight, the denoiser that minimises eq. 5's
error has a closed form: the posterior mean

    D*(v_t, t) = Σ_i w_i v_i,   w_i ∝ exp(−‖v_t − α_t v_i‖² / 2σ_t²)   (model.diffusion.posterior_weights),

since v_t = α_t v_0 + σ_t ε (eq. 1). DDIM with D* must reach every training map (else the schedule or the
sampler is at fault); DDIM with the single map of largest w_i asks whether one structure per step is enough; and
switching from D* to the learned denoiser below a time t_c finds where the learned one goes wrong.

Every denoiser here has the signature ``ddim_sample`` takes: ``(v_t (B, D, D, D), t (B,)) → v̂_0 (B, D, D, D)``,
normalised.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cryosampler.model.diffusion import DiffusionConfig, posterior_weights

__all__ = ["Denoiser", "ideal_denoiser", "nearest_map_denoiser", "switched_denoiser",
           "state_coordinate", "Recorder"]

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ideal_denoiser(maps: torch.Tensor, config: DiffusionConfig = DiffusionConfig()) -> Denoiser:
    """D*: the posterior mean Σ_i w_i v_i over the training maps ``maps`` (M, D, D, D), normalised."""

    def denoise(v_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        weights = posterior_weights(v_t, t, maps, 1.0, config, torch.float64).to(maps.dtype)  # (B, M)
        return torch.einsum("bm,mxyz->bxyz", weights, maps)

    return denoise


def nearest_map_denoiser(maps: torch.Tensor, config: DiffusionConfig = DiffusionConfig()) -> Denoiser:
    """The single training map of largest posterior weight: what a denoiser that returns one structure per step
    could at best return."""

    def denoise(v_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return maps[posterior_weights(v_t, t, maps, 1.0, config, torch.float64).argmax(1)]

    return denoise


def switched_denoiser(learned: Denoiser, ideal: Denoiser, t_switch: float) -> Denoiser:
    """``ideal`` at times above ``t_switch``, ``learned`` at and below it (one time per DDIM step)."""

    def denoise(v_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return ideal(v_t, t) if float(t[0]) > t_switch else learned(v_t, t)

    return denoise


def state_coordinate(v0_hat: torch.Tensor, map_a: torch.Tensor, map_b: torch.Tensor) -> torch.Tensor:
    """Where denoised maps lie between two states: ⟨v̂ − a, b − a⟩ / ‖b − a‖², 0 at state a, 1 at b.

    v0_hat: (B, D, D, D); map_a, map_b: (D, D, D), all normalised. Returns (B,) float64.
    """
    axis = (map_b - map_a).reshape(-1).double()
    return ((v0_hat - map_a).reshape(len(v0_hat), -1).double() @ axis) / (axis @ axis)


class Recorder:
    """Wraps a denoiser and keeps, at each call, the time and what ``measure(v_t, t, v̂_0)`` returns, so that a
    sampling run can be followed step by step."""

    def __init__(self, denoiser: Denoiser, measure: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict]):
        self.denoiser, self.measure, self.rows = denoiser, measure, []

    def __call__(self, v_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v0_hat = self.denoiser(v_t, t)
        self.rows.append({"t": float(t[0]), **self.measure(v_t, t, v0_hat)})
        return v0_hat
