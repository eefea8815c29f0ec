"""Stage 2 of the latent model family (issue 36): a diffusion model over the frozen latents of stage 1
(:mod:`cryosampler.model.autoencoder`).

The schedule, noising, loss weight and sampler are map-space diffusion's own (:mod:`cryosampler.model.diffusion`:
cosine VP schedule, eq. 1, eq. 5's min-SNR weight, DDIM), which are generic over a sample's trailing axes: here a
sample is a vector u (B, d), the latent standardised by the training latents' mean and standard deviation, so that
σ_data = 1 as eq. 1 assumes of normalised maps. The denoiser predicts û_0 as the map-space model predicts V̂_0.

The network is a residual MLP whose blocks are modulated (adaLN) by the log-SNR and, for a model of several
proteins, by the protein's embedding; every latent decodes to one structure, so the populations are those of
this distribution.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from cryosampler.model.diffusion import DiffusionConfig, ddim_sample, log_snr
from cryosampler.model.encoder import sinusoidal_embedding

__all__ = ["LatentDiffusionConfig", "LATENT_DIFFUSION_PRESETS", "LatentDenoiser", "sample_latents"]


@dataclass(frozen=True)
class LatentDiffusionConfig:
    """Stage 2's denoiser and schedule. Named presets in ``LATENT_DIFFUSION_PRESETS``."""

    latent_dim: int = 8  # d, stage 1's AutoencoderConfig.latent_dim
    width: int = 256
    depth: int = 3  # residual MLP blocks
    proteins: int = 1  # embedding slots: a model of several proteins is conditioned on which one
    # Map-space diffusion's schedule and sampler; eq. 5's weight floored at 1 as the command line's default
    # model (commands/train.py): the highest noise levels decide which state a sample goes to.
    diffusion: DiffusionConfig = field(default_factory=lambda: DiffusionConfig(weight_floor=1.0))

    def __post_init__(self):
        for name in ("latent_dim", "width", "depth", "proteins"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"LatentDiffusionConfig.{name} must be a positive int, got {value!r}")


LATENT_DIFFUSION_PRESETS = {
    "default": LatentDiffusionConfig(),
    # Tests: same code, a small network and a short sampler.
    "smoke": LatentDiffusionConfig(latent_dim=4, width=64, depth=2,
                                   diffusion=DiffusionConfig(weight_floor=1.0, n_steps=25)),
}


class _Block(nn.Module):
    """Residual MLP block with adaLN-Zero conditioning (as encoder.DiTBlock, without attention)."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.SiLU(), nn.Linear(2 * width, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.ada(cond).chunk(3, dim=-1)  # (B, W) each
        return h + gate * self.mlp(self.norm(h) * (1 + scale) + shift)


class LatentDenoiser(nn.Module):
    """û_0 = f_ψ(u_t, log-SNR_t, protein): standardised latents (B, d) → (B, d)."""

    def __init__(self, config: LatentDiffusionConfig, latent_mean: torch.Tensor, latent_std: torch.Tensor):
        """latent_mean, latent_std: (d,), the training latents' per-dimension mean and standard deviation (latent
        units), which standardise them: u = (z − mean) / std."""
        super().__init__()
        c = self.config = config
        if latent_mean.shape != (c.latent_dim,) or latent_std.shape != (c.latent_dim,):
            raise ValueError(f"latent_mean and latent_std must be ({c.latent_dim},), got "
                             f"{tuple(latent_mean.shape)} and {tuple(latent_std.shape)}")
        if not bool((latent_std > 0).all()):
            raise ValueError(f"latent_std must be positive in every dimension, got {latent_std.tolist()}")
        self.register_buffer("latent_mean", latent_mean.detach().float().clone())
        self.register_buffer("latent_std", latent_std.detach().float().clone())
        self.time = nn.Sequential(nn.Linear(c.width, c.width), nn.SiLU(), nn.Linear(c.width, c.width))
        self.protein = nn.Embedding(c.proteins, c.width)
        self.inp = nn.Linear(c.latent_dim, c.width)
        self.blocks = nn.ModuleList(_Block(c.width) for _ in range(c.depth))
        self.norm_out = nn.LayerNorm(c.width, elementwise_affine=False, eps=1e-6)
        self.out = nn.Linear(c.width, c.latent_dim)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        # adaLN-Zero: every block starts as the identity.
        for block in self.blocks:
            nn.init.zeros_(block.ada[-1].weight)
            nn.init.zeros_(block.ada[-1].bias)

    def standardise(self, z: torch.Tensor) -> torch.Tensor:
        """Latent units (..., d) → standardised u."""
        return (z - self.latent_mean) / self.latent_std

    def destandardise(self, u: torch.Tensor) -> torch.Tensor:
        """Standardised u (..., d) → latent units, what stage 1's decoder takes."""
        return u * self.latent_std + self.latent_mean

    def forward(self, u_t: torch.Tensor, t: torch.Tensor, protein: torch.Tensor) -> torch.Tensor:
        """u_t: (B, d) noisy standardised latents; t: (B,) times in [0, 1]; protein: (B,) int64 slots."""
        c = self.config
        noise_level = log_snr(t, c.diffusion)  # (B,)
        cond = self.time(sinusoidal_embedding(noise_level, c.width)) + self.protein(protein)  # (B, W)
        h = self.inp(u_t)  # (B, W)
        for block in self.blocks:
            h = block(h, cond)
        return self.out(self.norm_out(h))  # (B, d)


@torch.no_grad()
def sample_latents(model: LatentDenoiser, n_samples: int, generator: torch.Generator, protein: int = 0,
                   n_steps: int | None = None) -> torch.Tensor:
    """``n_samples`` latents of protein slot ``protein`` by DDIM (diffusion.ddim_sample, from N(0, I) through
    ``n_steps`` times; default the config's): (n_samples, d) in latent units, on ``generator``'s device."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples}")
    if not 0 <= protein < model.config.proteins:
        raise ValueError(f"protein slot {protein} is not one of this model's {model.config.proteins}")
    config = model.config.diffusion
    if n_steps is not None:
        config = dataclasses.replace(config, n_steps=n_steps)
    slots = torch.full((n_samples,), protein, dtype=torch.int64, device=generator.device)
    u = ddim_sample(lambda u_t, t: model(u_t, t, slots), (n_samples, model.config.latent_dim), generator, config)
    return model.destandardise(u)
