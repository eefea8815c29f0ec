"""CryoSampler: the map denoiser V̂_0 = F(f_θ(V_t, SNR_t, X_ref)) (eq. 5) and its checkpoint format."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from cryosampler.diffusion import DiffusionConfig, log_snr
from cryosampler.encoder import AtomicEncoder, EncoderConfig
from cryosampler.featurize import ProteinBatch
from cryosampler.frame import Template
from cryosampler.render import MapGrid, render_density

__all__ = ["ModelConfig", "CryoSampler"]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model from a checkpoint."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    grid: MapGrid = field(default_factory=MapGrid)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        enc = dict(d["encoder"])
        enc["cnn_channels"] = tuple(enc["cnn_channels"])
        return cls(EncoderConfig(**enc), MapGrid(**d["grid"]), DiffusionConfig(**d["diffusion"]))


class CryoSampler(nn.Module):
    """Learned atomic encoder f_θ followed by the fixed differentiable cryo-EM forward model F."""

    def __init__(self, config: ModelConfig, sigma_data: float, template: Template):
        super().__init__()
        self.config, self.template = config, template
        self.encoder = AtomicEncoder(config.encoder, config.grid.size, config.grid.apix)
        # σ_data is a property of the training maps, estimated once and stored with the weights.
        self.register_buffer("sigma_data", torch.tensor(float(sigma_data)))

    def atoms(self, v_t: torch.Tensor, t: torch.Tensor, batch: ProteinBatch) -> torch.Tensor:
        """X̂_0 = f_θ(V_t, SNR_t, X_ref): v_t (B, D, D, D) normalised map, t (B,) → (B, N, 3) Å."""
        return self.encoder(v_t, log_snr(t, self.config.diffusion), batch)

    def render(self, coords: torch.Tensor, batch: ProteinBatch) -> torch.Tensor:
        """F(X): (B, N, 3) Å → (B, D, D, D) density in map units (not normalised)."""
        return render_density(coords, batch.atomic_numbers, self.config.grid, mask=batch.atom_mask,
                              check_bounds=False)

    def denoise(self, v_t: torch.Tensor, t: torch.Tensor,
                batch: ProteinBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """V̂_0 = F(f_θ(V_t, SNR_t, X_ref)) (eq. 5).

        Returns (X̂_0 (B, N, 3) Å, V̂_0 (B, D, D, D) in map units); eq. 9's normalised v̂_0 is V̂_0 / σ_data.
        """
        coords = self.atoms(v_t, t, batch)
        return coords, self.render(coords, batch)
