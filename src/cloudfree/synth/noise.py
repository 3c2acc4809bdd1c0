"""Fractal (1/f^beta) noise by spectral synthesis, the texture source of the synthetic scenes.

White Gaussian noise is filtered in the Fourier domain with the amplitude response
``(f^2 + f0^2) ** (-beta / 4)``, so the power spectrum falls as ``f ** -beta`` above the corner
frequency ``f0 = 1 / scale`` and is flat below it: ``scale`` (pixels) is the size of the largest
structures, ``beta`` their roughness (2: rough, 3-3.5: smooth, cloud-like). The result is
normalised to zero mean and unit standard deviation. The field is periodic; callers that need
non-periodic behaviour (cloud shadows displaced from their clouds) generate a larger field and
crop it.
"""

from __future__ import annotations

import numpy as np
from scipy import fft

__all__ = ["fractal_noise", "fractal_noise_1d"]


def _normalise(field: np.ndarray) -> np.ndarray:
    field = field - field.mean()
    std = float(field.std())
    if std > 0:
        field /= std
    return field.astype(np.float32, copy=False)


def fractal_noise(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    beta: float = 3.0,
    scale: float = 64.0,
    anisotropy: float = 1.0,
    angle: float = 0.0,
) -> np.ndarray:
    """A float32 ``[H, W]`` field of 1/f^beta noise with zero mean and unit standard deviation.

    Args:
        shape: ``(H, W)``.
        rng: random generator (the only source of randomness, so the field is reproducible).
        beta: spectral exponent of the power spectrum.
        scale: corner wavelength in pixels (size of the largest structures).
        anisotropy: > 1 stretches the structures by this factor along ``angle`` (streaky
            cirrus); 1 gives isotropic noise.
        angle: direction of the stretch in radians (0 = along the x axis).
    """
    h, w = int(shape[0]), int(shape[1])
    white = rng.standard_normal((h, w), dtype=np.float32)
    spec = fft.rfft2(white)
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :]
    if anisotropy != 1.0:
        c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
        f_along = fx * c + fy * s
        f_across = -fx * s + fy * c
        f2 = (f_along * anisotropy) ** 2 + (f_across / anisotropy) ** 2
    else:
        f2 = fx**2 + fy**2
    f0 = np.float32(1.0 / max(scale, 1.0))
    amp = (f2 + f0**2) ** np.float32(-beta / 4.0)
    amp[0, 0] = 0.0
    spec *= amp
    return _normalise(fft.irfft2(spec, s=(h, w)))


def fractal_noise_1d(
    n: int, rng: np.random.Generator, *, beta: float = 3.0, scale: float = 64.0
) -> np.ndarray:
    """A float32 ``[n]`` 1/f^beta noise signal with zero mean and unit standard deviation."""
    n = max(int(n), 2)
    spec = fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    amp = (f**2 + (1.0 / max(scale, 1.0)) ** 2) ** (-beta / 4.0)
    amp[0] = 0.0
    return _normalise(fft.irfft(spec * amp, n=n))
