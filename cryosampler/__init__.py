"""CryoSampler: map-space diffusion through an atomic encoder and a differentiable cryo-EM forward model."""

__version__ = "0.1.0"
