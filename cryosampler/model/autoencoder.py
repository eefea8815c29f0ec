"""Stage 1 of the latent model family (issue 36; Shenoy et al. 2026): a map autoencoder whose decoder is atomic.

    q(z | V) = N(μ(V), diag σ²(V)),   X = g_φ(z, X_ref) = X_ref + offsets

The encoder is the 3-D ResNet of :mod:`cryosampler.model.encoder` (its ``FiLMResBlock`` stages, with no noise
level to condition on) over the map, its last feature map flattened into the mean and log-variance of a small
latent z (d = 8 by default: a VAE). The decoder is that module's DiT (its ``DiTBlock``) over the reference's
tokens, z entering every block through adaLN and each token's input, and a head that moves the reference: by
per-atom offsets (Å) as the map-space encoder's per-atom head does, or, the default, by one rigid motion per
residue. Each latent decodes to **one** structure. Stage 2 (:mod:`cryosampler.model.latent_diffusion`) learns
the distribution of the training maps' latents: there the populations live, never in a mixture of renders.

The training objective (the map term through :mod:`cryosampler.physics.render`, the restraints, the clash term)
is assembled in :mod:`cryosampler.latent_training`; this module holds the networks and the KL of the posterior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cryosampler.io.grid import MapGrid
from cryosampler.model.encoder import (DiTBlock, FiLMResBlock, add_chain_embedding, chain_embedding, check_window,
                                       init_dit, sinusoidal_embedding, token_mean)
from cryosampler.model.featurize import ProteinBatch
from cryosampler.physics.render import render_density

__all__ = ["AutoencoderConfig", "AUTOENCODER_PRESETS", "MapEncoder", "AtomicDecoder", "MapAutoencoder",
           "kl_divergence", "sample_posterior", "LOG_VAR_RANGE", "INITIAL_SIGMA"]

# σ of every posterior at initialisation: narrow, so that the decoder sees each map's latent rather than noise from
# the first step (a posterior as wide as the prior would teach it to ignore z); the KL widens it where the map term
# allows.
INITIAL_SIGMA = 0.1
# The encoder's log σ² is clamped here: σ from 2.5e-3 to 20, far beyond what the KL and the map term settle on,
# but exp() of an unbounded output overflows in the first steps of an unlucky initialisation.
LOG_VAR_RANGE = (-12.0, 6.0)


@dataclass(frozen=True)
class AutoencoderConfig:
    """Architecture of stage 1. Named presets in ``AUTOENCODER_PRESETS``."""

    latent_dim: int = 8  # d: a path of states needs one or two dimensions; the KL switches off the rest
    # The encoder reads the map average-pooled by this factor (64³ × 2 Å → 32³ × 4 Å): a latent of a domain
    # motion needs no finer voxels, and it cuts the ResNet's cost by 8× on the CPU. The map term still compares
    # the decoded structure's render with the full map.
    input_pool: int = 2
    cnn_channels: tuple[int, ...] = (8, 16, 32)  # one stride-2 residual stage per entry (the default encoder's)
    width: int = 128  # DiT hidden size (the default encoder's)
    depth: int = 4  # DiT blocks
    heads: int = 4
    mlp_ratio: float = 2.0
    head_hidden: int = 128
    # How the decoder moves the reference: "atom", per-atom offsets from the per-atom head (the map-space encoder's);
    # or "rigid", one rotation and translation per token, so that each residue keeps its own geometry exactly and
    # only the restraints between residues have work to do. Per-atom offsets must first learn to keep every
    # residue's shape, which the restraints hold them to, and barely learned a domain motion on a toy where rigid
    # residues did (docs/decisions.md).
    motion: Literal["atom", "rigid"] = "rigid"
    # Chains of the reference: the decoder's DiT adds a chain embedding for each after the first (the map family's
    # EncoderConfig.chains, 0 included); `train` sets it from the references.
    chains: int = 1
    attention_window: int = 0  # the decoder DiT's: EncoderConfig.attention_window

    def __post_init__(self):
        for name in ("latent_dim", "input_pool", "width", "depth", "heads", "head_hidden"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"AutoencoderConfig.{name} must be a positive int, got {value!r}")
        if not (isinstance(self.chains, int) and self.chains >= 0):
            raise ValueError(f"AutoencoderConfig.chains must be an int ≥ 0, got {self.chains!r}")
        if self.width % self.heads:
            raise ValueError(f"AutoencoderConfig.width {self.width} must be a multiple of heads {self.heads}")
        if self.motion not in ("atom", "rigid"):
            raise ValueError(f"AutoencoderConfig.motion must be 'atom' or 'rigid', got {self.motion!r}")
        if not self.cnn_channels:
            raise ValueError("AutoencoderConfig.cnn_channels needs at least one stage")
        check_window(self.attention_window, "AutoencoderConfig")


AUTOENCODER_PRESETS = {
    # CPU design: the default encoder's ResNet and DiT sizes, residue tokens.
    "default": AutoencoderConfig(),
    # Tests: same code, smaller sizes.
    "smoke": AutoencoderConfig(latent_dim=4, cnn_channels=(4, 8), width=32, depth=1, heads=2, head_hidden=32),
}


def _encoded_side(grid_size: int, config: AutoencoderConfig) -> int:
    """Side of the ResNet's last feature map: the pooled map halved (rounding up) by every stride-2 stage."""
    side = grid_size // config.input_pool
    if side < 1:
        raise ValueError(f"a {grid_size}³ grid pooled by {config.input_pool} leaves no voxel")
    for _ in config.cnn_channels:
        side = math.ceil(side / 2)
    return side


class MapEncoder(nn.Module):
    """q(z | V): normalised map (B, D, D, D) → mean and log-variance of z, (B, d) each."""

    def __init__(self, config: AutoencoderConfig, grid_size: int):
        super().__init__()
        self.config = config
        channels = (1,) + config.cnn_channels
        # No noise level to condition on: FiLM is given a zero condition (its Linear's input), which leaves it a
        # learned scale and shift per channel.
        self.stages = nn.ModuleList(FiLMResBlock(a, b, 1) for a, b in zip(channels[:-1], channels[1:]))
        # Flattened rather than averaged: where in the box the density sits is what tells states apart.
        features = config.cnn_channels[-1] * _encoded_side(grid_size, config) ** 3
        self.to_posterior = nn.Linear(features, 2 * config.latent_dim)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        # log σ² starts at log INITIAL_SIGMA² for every map; μ keeps the default initialisation.
        d = self.config.latent_dim
        nn.init.zeros_(self.to_posterior.weight[d:])
        nn.init.constant_(self.to_posterior.bias[d:], 2 * math.log(INITIAL_SIGMA))

    def forward(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = v[:, None]  # (B, 1, D, D, D)
        if self.config.input_pool > 1:
            h = F.avg_pool3d(h, self.config.input_pool)  # (B, 1, D/p, D/p, D/p)
        cond = v.new_zeros(len(v), 1)
        for stage in self.stages:
            h = stage(h, cond)  # (B, C_s, D_s, D_s, D_s)
        mean, log_var = self.to_posterior(h.flatten(1)).chunk(2, dim=-1)  # (B, d) each
        return mean, log_var.clamp(*LOG_VAR_RANGE)


class AtomicDecoder(nn.Module):
    """g_φ(z, X_ref) → X: a DiT over the reference's tokens conditioned on z, and a head that moves the reference
    (per-atom offsets, or a rigid motion per token: ``AutoencoderConfig.motion``)."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        c = config
        self.config = c
        self.cond = nn.Sequential(nn.Linear(c.latent_dim, c.width), nn.SiLU(), nn.Linear(c.width, c.width))
        self.token_in = nn.Linear(3 + c.width, c.width)  # token centre (nm) ⊕ the latent's condition
        self.pos = nn.Linear(c.width, c.width)  # on a sinusoidal embedding of the chain position
        self.chain = chain_embedding(c.chains, c.width)
        self.blocks = nn.ModuleList(DiTBlock(c.width, c.heads, c.mlp_ratio, c.attention_window, shifted=i % 2 == 1)
                                    for i in range(c.depth))
        self.norm_out = nn.LayerNorm(c.width, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(c.width, 2 * c.width))
        # "atom": token output ⊕ atom offset from the token centre → offset (Å); "rigid": token output → the vector
        # part of a quaternion (3) and a translation (Å, 3).
        head_in, head_out = (c.width + 3, 3) if c.motion == "atom" else (c.width, 6)
        self.head = nn.Sequential(nn.Linear(head_in, c.head_hidden), nn.SiLU(),
                                  nn.Linear(c.head_hidden, c.head_hidden), nn.SiLU(),
                                  nn.Linear(c.head_hidden, head_out))
        self.initialize_weights()

    def initialize_weights(self) -> None:
        # The encoder's DiT initialisation: an untrained decoder returns X_ref (zero offsets, or identity rotations
        # and zero translations), whatever z.
        init_dit(self.pos, self.blocks, self.ada_out, self.head)

    def forward(self, z: torch.Tensor, batch: ProteinBatch) -> torch.Tensor:
        """z: (B, d); batch: the references. Returns (B, N, 3) float32 Å: the reference moved (padded atoms: X_ref)."""
        c = self.config
        B, N, _ = batch.ref_coords.shape
        cond = self.cond(z)  # (B, W)
        token_centre = token_mean(batch.ref_coords, batch)  # (B, T, 3), Å
        T = token_centre.shape[1]
        x = self.token_in(torch.cat([token_centre / 10.0, cond[:, None].expand(B, T, c.width)], -1))  # nm: O(1)
        x = x + self.pos(sinusoidal_embedding(batch.token_position, c.width))  # (B, T, W)
        x = add_chain_embedding(x, self.chain, batch)
        for block in self.blocks:
            x = block(x, cond, batch.token_mask)
        shift, scale = self.ada_out(cond)[:, None].chunk(2, dim=-1)
        x = self.norm_out(x) * (1 + scale) + shift  # (B, T, W)

        centre = torch.gather(token_centre, 1, batch.atom_token[..., None].expand(B, N, 3))  # (B, N, 3), Å
        if c.motion == "atom":
            # Per-atom head → offsets (Å), residual on X_ref.
            per_atom = torch.gather(x, 1, batch.atom_token[..., None].expand(B, N, c.width))  # (B, N, W)
            offsets = self.head(torch.cat([per_atom, (batch.ref_coords - centre) / 10.0], -1))  # (B, N, 3)
        else:
            # Per-token rigid motion about the token centre: X = R_t (X_ref − c_t) + c_t + τ_t. The translation is
            # read in nm, like the DiT's inputs: a domain moves tens of Å, an O(1) output apart.
            quaternion, translation = self.head(x).split(3, dim=-1)  # (B, T, 3) each
            rotation = _rotation(quaternion)  # (B, T, 3, 3)
            index = batch.atom_token[..., None, None].expand(B, N, 3, 3)
            turned = (torch.gather(rotation, 1, index) @ (batch.ref_coords - centre)[..., None])[..., 0]  # (B, N, 3)
            moved = 10.0 * torch.gather(translation, 1, batch.atom_token[..., None].expand(B, N, 3))  # (B, N, 3), Å
            offsets = turned + centre + moved - batch.ref_coords
        return batch.ref_coords + offsets * batch.atom_mask[..., None]


def _rotation(vector: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) of the unit quaternions (1, b, c, d) / ‖(1, b, c, d)‖, vector (..., 3) = (b, c, d)
    (AlphaFold 2's parameterisation: zero is the identity, and every vector is a valid rotation)."""
    q = torch.cat([torch.ones_like(vector[..., :1]), vector], -1)
    a, b, c, d = (q / q.norm(dim=-1, keepdim=True)).unbind(-1)
    return torch.stack([
        a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c),
        2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b),
        2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d,
    ], -1).unflatten(-1, (3, 3))


class MapAutoencoder(nn.Module):
    """Stage 1: map → q(z | V) (:class:`MapEncoder`), z + reference → one structure (:class:`AtomicDecoder`),
    rendered by the project's forward model F."""

    def __init__(self, config: AutoencoderConfig, grid: MapGrid, sigma_data: float):
        super().__init__()
        self.config, self.grid = config, grid
        self.encoder = MapEncoder(config, grid.size)
        self.decoder = AtomicDecoder(config)
        # σ_data: the training maps' voxel standard deviation (training.estimate_sigma_data), stored with the weights.
        self.register_buffer("sigma_data", torch.tensor(float(sigma_data)))

    def encode(self, volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """volume: (B, D, D, D) map units on the model's grid and frame → (μ, log σ²), (B, d) each."""
        return self.encoder(volume / self.sigma_data)

    def decode(self, z: torch.Tensor, batch: ProteinBatch) -> torch.Tensor:
        """z: (B, d) → (B, N, 3) float32 Å, the model's frame: one structure per latent."""
        return self.decoder(z, batch)

    def render(self, coords: torch.Tensor, batch: ProteinBatch, grid: MapGrid | None = None) -> torch.Tensor:
        """F(X): (B, N, 3) Å → (B, D, D, D) map units, on ``grid`` (default the model's)."""
        return render_density(coords, batch.atomic_numbers, grid or self.grid, mask=batch.atom_mask,
                              check_bounds=False)


def kl_divergence(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²), nats: (B, d) each → (B,)."""
    return 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(-1)


def sample_posterior(mean: torch.Tensor, log_var: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """z = μ + σ ε, ε ~ N(0, I) from ``generator`` (the reparameterisation): (B, d) each → (B, d)."""
    eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + (0.5 * log_var).exp() * eps
