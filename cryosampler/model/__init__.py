"""The learned model: reference features, the atomic encoder, the diffusion process, the structural losses and
the map denoiser that joins them."""
