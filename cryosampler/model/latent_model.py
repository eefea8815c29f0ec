"""The latent model family as one trained model (issue 36): stage 1's map autoencoder
(:mod:`cryosampler.model.autoencoder`), stage 2's latent prior (:mod:`cryosampler.model.latent_diffusion`) and the
training maps' frozen latents with their weights, which sampling's population report and the latent traversals
read. What the command line trains with ``--family latent``, saves in a checkpoint and samples, fits and
traverses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from cryosampler.io.grid import MapGrid
from cryosampler.model.autoencoder import AUTOENCODER_PRESETS, AutoencoderConfig, MapAutoencoder
from cryosampler.model.diffusion import DiffusionConfig
from cryosampler.model.featurize import ProteinFeatures, collate
from cryosampler.model.latent_diffusion import LATENT_DIFFUSION_PRESETS, LatentDenoiser, LatentDiffusionConfig
from cryosampler.physics.frame import Template

__all__ = ["LatentModelConfig", "LATENT_MODEL_PRESETS", "LatentModel"]


@dataclass(frozen=True)
class LatentModelConfig:
    """Everything needed to rebuild a latent model from a checkpoint. Named presets in ``LATENT_MODEL_PRESETS``."""

    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    prior: LatentDiffusionConfig = field(default_factory=LatentDiffusionConfig)
    grid: MapGrid = field(default_factory=MapGrid)

    def __post_init__(self):
        if self.prior.latent_dim != self.autoencoder.latent_dim:
            raise ValueError(f"LatentModelConfig: the prior's latent_dim {self.prior.latent_dim} differs from the "
                             f"autoencoder's {self.autoencoder.latent_dim}")

    # What reference.check_takes asks of a model: its tokens and how many it takes (the decoder's attention
    # takes any number).
    tokens = "residue"
    max_tokens = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LatentModelConfig:
        auto = dict(d["autoencoder"])
        auto["cnn_channels"] = tuple(auto["cnn_channels"])
        auto.setdefault("chains", 0)  # written before chain embeddings: none, any number of chains
        prior = dict(d["prior"])
        prior["diffusion"] = DiffusionConfig(**prior["diffusion"])
        return cls(AutoencoderConfig(**auto), LatentDiffusionConfig(**prior), MapGrid(**d["grid"]))

    @property
    def chains(self) -> int:
        """The most chains a reference may have (the decoder's chain slots)."""
        return self.autoencoder.chains

    def with_tokens(self, chains: int, attention_window: int) -> LatentModelConfig:
        """This config with ``chains`` chain slots and attention windows of ``attention_window`` tokens (0: full
        attention) in the decoder."""
        return dataclasses.replace(self, autoencoder=dataclasses.replace(self.autoencoder, chains=chains,
                                                                         attention_window=attention_window))

    def with_proteins(self, proteins: int) -> LatentModelConfig:
        """This config with ``proteins`` embedding slots in the prior (one per protein trained on)."""
        return dataclasses.replace(self, prior=dataclasses.replace(self.prior, proteins=proteins))


LATENT_MODEL_PRESETS = {
    "default": LatentModelConfig(AUTOENCODER_PRESETS["default"], LATENT_DIFFUSION_PRESETS["default"]),
    "smoke": LatentModelConfig(AUTOENCODER_PRESETS["smoke"], LATENT_DIFFUSION_PRESETS["smoke"]),
}


class LatentModel(nn.Module):
    """Stage 1 and stage 2 together, with the training maps' latents.

    Buffers, one row per training map, in the order training read them: ``map_mean``, ``map_log_var`` (M, d) the
    frozen posteriors q(z | V_m); ``map_weight`` (M,) the weight each was drawn with in stage 2 (the populations
    asked for); ``map_protein`` (M,) int64, its protein slot.
    """

    def __init__(self, config: LatentModelConfig, sigma_data: float, template: Template | None, n_maps: int):
        super().__init__()
        self.config, self.template = config, template
        self.autoencoder = MapAutoencoder(config.autoencoder, config.grid, sigma_data)
        d = config.autoencoder.latent_dim
        self.prior = LatentDenoiser(config.prior, torch.zeros(d), torch.ones(d))
        self.register_buffer("map_mean", torch.zeros(n_maps, d))
        self.register_buffer("map_log_var", torch.zeros(n_maps, d))
        self.register_buffer("map_weight", torch.ones(n_maps))
        self.register_buffer("map_protein", torch.zeros(n_maps, dtype=torch.int64))

    @property
    def sigma_data(self) -> torch.Tensor:
        return self.autoencoder.sigma_data

    @torch.no_grad()
    def decode(self, z: torch.Tensor, protein: ProteinFeatures, batch_size: int = 64) -> torch.Tensor:
        """z: (S, d) latents → (S, N, 3) float32 Å in the model's frame, one structure per latent, decoded in
        batches of ``batch_size`` (on the model's device; returned on the CPU)."""
        device = self.sigma_data.device
        parts = []
        for start in range(0, len(z), batch_size):
            chunk = z[start:start + batch_size].to(device)
            parts.append(self.autoencoder.decode(chunk, collate([protein] * len(chunk)).to(device)).cpu())
        return torch.cat(parts) if parts else torch.zeros(0, protein.ref_coords.shape[0], 3)

    @torch.no_grad()
    def encode(self, volume: torch.Tensor) -> torch.Tensor:
        """volume: (B, D, D, D) map units on the model's grid and frame → the posterior means μ, (B, d)."""
        return self.autoencoder.encode(volume.to(self.sigma_data.device))[0]
