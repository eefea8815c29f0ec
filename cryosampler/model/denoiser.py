"""CryoSampler: the map denoiser V̂_0 = F(f_θ(V_t, SNR_t, X_ref)) (eq. 5), as a mixture of G renders when the
encoder gives G coordinate sets (issue 19), its config and the encoder's precision."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from cryosampler.io.grid import MapGrid
from cryosampler.model.diffusion import DiffusionConfig, log_snr, posterior_weights
from cryosampler.model.encoder import AtomicEncoder, EncoderConfig
from cryosampler.model.featurize import ProteinBatch
from cryosampler.physics.frame import Template
from cryosampler.physics.render import render_density

__all__ = ["ModelConfig", "CryoSampler", "PRECISIONS", "check_precision"]

# Encoder arithmetic: "fp32", or "bf16" autocast of the encoder only (CryoSampler.atoms says why).
PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else ValueError."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model from a checkpoint."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    grid: MapGrid = field(default_factory=MapGrid)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)

    @property
    def tokens(self) -> str:
        """What a token is (featurize's ``tokens``)."""
        return self.encoder.tokens

    @property
    def max_tokens(self) -> int | None:
        """The most tokens the encoder takes (its global features have slots), None for any number."""
        return self.encoder.max_tokens if self.encoder.volume_features == "global" else None

    @property
    def chains(self) -> int:
        """The most chains a reference may have (the encoder's chain slots)."""
        return self.encoder.chains

    def with_tokens(self, chains: int, attention_window: int) -> "ModelConfig":
        """This config with ``chains`` chain slots and attention windows of ``attention_window`` tokens (0: full
        attention) in the encoder."""
        return dataclasses.replace(self, encoder=dataclasses.replace(self.encoder, chains=chains,
                                                                     attention_window=attention_window))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        enc = dict(d["encoder"])
        enc["cnn_channels"] = tuple(enc["cnn_channels"])
        # Written before the option existed: those models were trained with sequence features.
        enc.setdefault("sequence_features", True)
        enc.setdefault("chains", 0)  # written before chain embeddings: none, any number of chains
        return cls(EncoderConfig(**enc), MapGrid(**d["grid"]), DiffusionConfig(**d["diffusion"]))


class CryoSampler(nn.Module):
    """Learned atomic encoder f_θ followed by the fixed differentiable cryo-EM forward model F."""

    def __init__(self, config: ModelConfig, sigma_data: float, template: Template | None):
        """template: the common frame proteins are placed in (frame.placement), or None for a model of several
        proteins each on its own principal axes (frame.principal_placement)."""
        super().__init__()
        self.config, self.template = config, template
        self.encoder = AtomicEncoder(config.encoder, config.grid.size, config.grid.apix)
        # σ_data is a property of the training maps, estimated once and stored with the weights.
        self.register_buffer("sigma_data", torch.tensor(float(sigma_data)))

    def components(self, v_t: torch.Tensor, t: torch.Tensor, batch: ProteinBatch,
                   precision: str = "fp32") -> torch.Tensor:
        """The encoder's G coordinate sets f_θ(V_t, SNR_t, X_ref): v_t (B, D, D, D) normalised map, t (B,) →
        (B, G, N, 3) float32 Å (G = 1: the paper's X̂_0).

        precision: "fp32", or "bf16" to run the encoder (ResNet + DiT) under bfloat16 autocast. Only the
        encoder: log-SNR (up to ±8.8, through exp in the loss weight), the renderer's map values and the
        diffusion arithmetic stay float32, since bf16's 8-bit mantissa would round them by up to 0.4 %.
        """
        noise_level = log_snr(t, self.config.diffusion)  # float32, outside autocast
        with torch.autocast(v_t.device.type, dtype=torch.bfloat16, enabled=check_precision(precision) == "bf16"):
            coords = self.encoder(v_t, noise_level, batch)
        return coords.float()

    def render(self, coords: torch.Tensor, batch: ProteinBatch) -> torch.Tensor:
        """F(X): (B, N, 3) Å → (B, D, D, D) density in map units (not normalised)."""
        return render_density(coords, batch.atomic_numbers, self.config.grid, mask=batch.atom_mask,
                              check_bounds=False)

    def mixture(self, v_t: torch.Tensor, t: torch.Tensor, batch: ProteinBatch,
                precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The G coordinate sets, their weights and their maps: (X (B, G, N, 3) Å, w (B, G), F(X) (B, G, D, D, D)
        map units).

        w_g ∝ exp(−‖v_t − α_t F(X_g) / σ_data‖² / 2σ_t²): how well each component's map, noised to t, explains
        v_t (the posterior of a mixture whose components are equally likely a priori; ``posterior_weights`` in its
        residual form, float32 and differentiable). Near t = 1 the weights are nearly equal and the mixture stands
        for several states; near t = 0 they pick the one component the map shows. G = 1: w = 1.
        """
        coords = self.components(v_t, t, batch, precision)  # (B, G, N, 3)
        B, G = coords.shape[:2]
        if G == 1:
            return coords, coords.new_ones(B, 1), self.render(coords[:, 0], batch)[:, None]
        repeat = lambda x: x.repeat_interleave(G, dim=0)  # (B, …) → (B·G, …), components inner
        maps = render_density(coords.flatten(0, 1), repeat(batch.atomic_numbers), self.config.grid,
                              mask=repeat(batch.atom_mask), check_bounds=False).unflatten(0, (B, G))
        weights = posterior_weights(v_t, t, maps, self.sigma_data, self.config.diffusion)  # (B, G)
        return coords, weights, maps

    def denoise(self, v_t: torch.Tensor, t: torch.Tensor, batch: ProteinBatch,
                precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
        """V̂_0 = Σ_g w_g F(X_g), X = f_θ(V_t, SNR_t, X_ref) (eq. 5 with a mixture of G renders; G = 1 is the
        paper's F(f_θ(…))); precision of the encoder as :meth:`components`.

        Returns (X (B, G, N, 3) Å, V̂_0 (B, D, D, D) in map units); eq. 9's normalised v̂_0 is V̂_0 / σ_data.
        """
        coords, weights, maps = self.mixture(v_t, t, batch, precision)
        if coords.shape[1] == 1:
            return coords, maps[:, 0]
        return coords, torch.einsum("bg,bgxyz->bxyz", weights, maps)

    def atoms(self, v_t: torch.Tensor, t: torch.Tensor, batch: ProteinBatch, precision: str = "fp32") -> torch.Tensor:
        """X̂_0: the component of largest weight (:meth:`mixture`), (B, N, 3) float32 Å; G = 1: f_θ(V_t, SNR_t,
        X_ref). The read-out of eq. 12 at t → 0, where the weights pick the component the map shows."""
        if self.config.encoder.components == 1:
            return self.components(v_t, t, batch, precision)[:, 0]
        coords, weights, _ = self.mixture(v_t, t, batch, precision)
        return coords[torch.arange(len(coords)), weights.argmax(1)]

    # DistributedDataParallel synchronises gradients only of what runs through forward.
    forward = denoise
