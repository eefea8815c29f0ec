"""The physics of maps and structures: the cryo-EM forward model, map degradation, frames, superposition and
normal modes."""
