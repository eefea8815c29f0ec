"""The microscope's contrast transfer function (CTF) and its application to 2-D particle images.

The CTF is cryoDRGN's (``cryodrgn.ctf.compute_ctf``, the formula RELION and CTFFIND share): with spatial frequency
s (1/Å) at angle θ, defocus Δf(θ) = ½ (Δf_U + Δf_V + (Δf_U − Δf_V) cos 2(θ − θ_ast)), wavelength λ and
spherical aberration C_s,

    γ = 2π (−½ Δf λ s² + ¼ C_s λ³ s⁴) − φ,    CTF = √(1 − w²) sin γ − w cos γ,

w the amplitude contrast and φ a phase shift. Images are indexed [y, x] (rows, columns) with the image centre at
pixel (D//2, D//2), as cryoDRGN and RELION store them; frequency x runs along the columns.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["electron_wavelength", "frequency_grid", "ctf_2d", "apply_ctf"]


def electron_wavelength(voltage: float) -> float:
    """Relativistic electron wavelength λ (Å) at an accelerating voltage of ``voltage`` kV."""
    volts = 1000.0 * voltage
    return 12.2639 / math.sqrt(volts + 0.97845e-6 * volts**2)


def frequency_grid(size: int, apix: float) -> np.ndarray:
    """Spatial frequencies of a ``size``² image's discrete Fourier transform (numpy's unshifted order):
    (size, size, 2) float64, 1/Å, [..., 0] along x (columns), [..., 1] along y (rows)."""
    f = np.fft.fftfreq(size, d=apix)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    return np.stack([fx, fy], axis=-1)


def ctf_2d(freqs: np.ndarray, defocus_u, defocus_v, defocus_angle, voltage: float, cs: float,
           amplitude_contrast: float, phase_shift=0.0) -> np.ndarray:
    """The CTF at ``freqs`` (..., 2) 1/Å for B micrographs: (B, ...) float64.

    defocus_u, defocus_v: (B,) Å (underfocus positive); defocus_angle: (B,) degrees; voltage kV; cs mm;
    amplitude_contrast w (0–1); phase_shift: (B,) or scalar, degrees.
    """
    lam = electron_wavelength(voltage)
    cs_angstrom = cs * 1e7
    shape = (-1,) + (1,) * (freqs.ndim - 1)
    dfu, dfv = (np.asarray(d, np.float64).reshape(shape) for d in (defocus_u, defocus_v))
    ang = np.deg2rad(np.asarray(defocus_angle, np.float64)).reshape(shape)
    phase = np.deg2rad(np.broadcast_to(np.asarray(phase_shift, np.float64), dfu.shape[:1])).reshape(shape)
    x, y = freqs[..., 0], freqs[..., 1]
    s2 = x**2 + y**2
    df = 0.5 * (dfu + dfv + (dfu - dfv) * np.cos(2.0 * (np.arctan2(y, x) - ang)))
    gamma = 2.0 * np.pi * (-0.5 * df * lam * s2 + 0.25 * cs_angstrom * lam**3 * s2**2) - phase
    return math.sqrt(1.0 - amplitude_contrast**2) * np.sin(gamma) - amplitude_contrast * np.cos(gamma)


def apply_ctf(images: np.ndarray, ctf: np.ndarray) -> np.ndarray:
    """``images`` (B, D, D), centred at pixel D//2, filtered by ``ctf`` (B, D, D) given on
    :func:`frequency_grid`'s unshifted frequencies: (B, D, D) float64."""
    spectrum = np.fft.fft2(np.fft.ifftshift(images, axes=(-2, -1)))
    return np.fft.fftshift(np.fft.ifft2(spectrum * ctf).real, axes=(-2, -1))
