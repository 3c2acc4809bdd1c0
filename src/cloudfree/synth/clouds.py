"""Clouds, haze and cloud shadows over a synthetic optical scene.

A fractal noise field ``n`` (1/f^beta, generated on a domain padded by the shadow displacement)
is thresholded at its ``1 - cover`` quantile inside the scene window ``thr``. Cloud thickness
``t`` in [0, 1] (the alpha of the cloud layer) is

* ``t_edge + (t_max - t_edge) * (1 - exp(-(n - thr) / s)) * m`` where ``n >= thr`` (``m`` is an
  optional smooth modulation in [0.25, 1] that thins parts of the cloud deck),
* a soft rim rising from 0 to :data:`VISIBLE_THICKNESS` just below ``thr``, 0 elsewhere,

so the fraction of pixels with ``t >= VISIBLE_THICKNESS`` equals the requested cover (up to
ties). Cloud types (:data:`CLOUD_TYPES`) differ in texture, edge sharpness, maximum thickness,
spectrum and shadow strength; the type is drawn from the cover (scattered cumulus at low cover,
haze, cirrus and mixed decks in between, overcast at high cover).

Rendering (float DN, per band b)::

    ground   = path_b + surface_b * (1 - S * w_b)          # shadow darkens the surface part
    cloudy_b = (1 - t) * ground + t * C_b * g(t) * (1 + 0.07 * texture)

with ``S`` the shadow strength: the thickness field shifted by a per-scene displacement
(sun direction and cloud height), scaled by the type's shadow strength and blurred (penumbra;
strengths below 0.01 are set to 0), and ``w_b`` the per-band shadow weight (blue keeps more
diffuse skylight than NIR/SWIR; the cirrus band B10 sees no ground shadow). ``C`` is the cloud
spectrum: bright and flat in VIS/NIR, lower in B09 and SWIR, B10 high only for high (ice) clouds
and cirrus; ``g(t) = 0.82 + 0.18 t`` brightens thick cores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cloudfree.errors import ConfigError
from cloudfree.synth.noise import fractal_noise

__all__ = [
    "CLOUD_SPECTRA_DN",
    "CLOUD_TYPES",
    "SHADOW_MASK_STRENGTH",
    "SHADOW_WEIGHTS",
    "THICK_CLOUD_THICKNESS",
    "VISIBLE_THICKNESS",
    "CloudLayer",
    "CloudType",
    "choose_cloud_type",
    "generate_clouds",
    "render_cloudy_band",
]

#: Thickness from which a pixel counts as cloudy (thin or thick) in the cover.
VISIBLE_THICKNESS = 0.1
#: Thickness from which a pixel is in ``cloud_mask`` (roughly what the rule-based detector sees).
THICK_CLOUD_THICKNESS = 0.3
#: Shadow strength from which a (cloud-free) pixel is in ``shadow_mask``.
SHADOW_MASK_STRENGTH = 0.2

_MIN_SHADOW = 0.01

#: Cloud-layer spectra (DN at full thickness), B01 ... B12.
CLOUD_SPECTRA_DN: dict[str, np.ndarray] = {
    # low water cloud: flat VIS/NIR, B09 ~0.5x, little in B10, SWIR 0.7x / 0.45x
    "low": np.array(
        [5900, 5800, 5650, 5700, 5700, 5900, 6150, 5900, 6300, 3200, 350, 4300, 2700],
        dtype=np.float32,
    ),
    # thick high (ice-topped) cloud: bright in B10, more SWIR absorption
    "high": np.array(
        [5600, 5500, 5400, 5450, 5450, 5600, 5800, 5600, 5900, 3300, 2600, 3300, 2000],
        dtype=np.float32,
    ),
    # haze: the limit of a thick scattering haze layer, bluish, nothing in B10
    "haze": np.array(
        [4300, 4100, 3800, 3600, 3500, 3400, 3400, 3300, 3300, 1500, 80, 2300, 1500],
        dtype=np.float32,
    ),
    # cirrus: thin ice cloud, flat and moderately bright, strong in B10
    "cirrus": np.array(
        [3900, 3800, 3700, 3700, 3700, 3700, 3800, 3700, 3800, 2300, 1800, 2700, 1900],
        dtype=np.float32,
    ),
}

#: Fraction of the surface signal removed in full shadow, per band (B01 ... B12).
SHADOW_WEIGHTS = np.array(
    [0.45, 0.55, 0.65, 0.7, 0.75, 0.8, 0.82, 0.85, 0.85, 0.85, 0.0, 0.88, 0.88], dtype=np.float32
)


@dataclass(frozen=True)
class CloudType:
    """Parameters of one cloud type (see the module docstring for the model)."""

    name: str
    beta: float
    scale: tuple[float, float]  # range of the noise corner wavelength (px)
    softness: float  # s: how fast thickness grows above the threshold (noise std units)
    t_edge: float
    t_max: tuple[float, float]
    modulated: bool
    spectra: tuple[str, ...]  # spectrum names, drawn uniformly
    shadow: float  # shadow strength under thick cloud
    offset: tuple[float, float]  # shadow displacement range (px)
    anisotropy: float = 1.0


def _types(*types: CloudType) -> dict[str, CloudType]:
    return {t.name: t for t in types}


#: The cloud types, by name.
CLOUD_TYPES: dict[str, CloudType] = _types(
    CloudType(
        name="cumulus", beta=3.4, scale=(50.0, 120.0), softness=0.35, t_edge=0.2,
        t_max=(1.0, 1.0), modulated=False, spectra=("low",), shadow=0.7, offset=(10.0, 40.0),
    ),
    CloudType(
        name="mixed", beta=3.2, scale=(80.0, 160.0), softness=0.6, t_edge=0.12,
        t_max=(1.0, 1.0), modulated=True, spectra=("low", "low", "high"), shadow=0.55,
        offset=(10.0, 40.0),
    ),
    CloudType(
        name="haze", beta=3.3, scale=(150.0, 400.0), softness=1.2, t_edge=0.1,
        t_max=(0.35, 0.6), modulated=False, spectra=("haze",), shadow=0.08, offset=(5.0, 20.0),
    ),
    CloudType(
        name="cirrus", beta=3.0, scale=(100.0, 250.0), softness=1.0, t_edge=0.1,
        t_max=(0.3, 0.55), modulated=False, spectra=("cirrus",), shadow=0.12,
        offset=(40.0, 80.0), anisotropy=3.0,
    ),
    CloudType(
        name="overcast", beta=3.0, scale=(150.0, 400.0), softness=0.25, t_edge=0.55,
        t_max=(1.0, 1.0), modulated=False, spectra=("low", "low", "high"), shadow=0.6,
        offset=(10.0, 40.0),
    ),
)  # fmt: skip

_TYPE_PROBABILITIES: tuple[tuple[float, dict[str, float]], ...] = (
    (0.3, {"cumulus": 0.5, "mixed": 0.2, "haze": 0.15, "cirrus": 0.15}),
    (0.75, {"cumulus": 0.25, "mixed": 0.35, "haze": 0.2, "cirrus": 0.2}),
    (0.95, {"mixed": 0.4, "overcast": 0.35, "haze": 0.15, "cirrus": 0.1}),
    (1.01, {"overcast": 1.0}),
)


@dataclass
class CloudLayer:
    """Clouds and shadows of one scene.

    Attributes:
        cloud_type: name of the cloud type (``"none"`` without clouds).
        thickness: float32 ``[H, W]`` cloud thickness / opacity in [0, 1].
        shadow: float32 ``[H, W]`` shadow strength in [0, 1] (fraction of direct light removed).
        spectrum: float32 ``[13]`` cloud spectrum at full thickness (DN), scene brightness applied.
        texture: float32 ``[H, W]`` cloud-top brightness texture (unit variance).
        shadow_offset: ``(dy, dx)`` pixel displacement from a cloud to its shadow.
    """

    cloud_type: str
    thickness: np.ndarray
    shadow: np.ndarray
    spectrum: np.ndarray
    texture: np.ndarray
    shadow_offset: tuple[int, int]

    @property
    def cloud_mask(self) -> np.ndarray:
        """Thick-ish cloud: thickness >= :data:`THICK_CLOUD_THICKNESS`."""
        return self.thickness >= THICK_CLOUD_THICKNESS

    @property
    def shadow_mask(self) -> np.ndarray:
        """Visible shadow: strength >= :data:`SHADOW_MASK_STRENGTH` outside ``cloud_mask``."""
        return (self.shadow >= SHADOW_MASK_STRENGTH) & ~self.cloud_mask


def choose_cloud_type(
    cover: float, rng: np.random.Generator, weights: Mapping[str, float] | None = None
) -> str:
    """Draw a cloud type suited to ``cover`` (one draw from ``rng``).

    ``weights`` (a season's type mix, :mod:`cloudfree.synth.domains`) multiply the probabilities
    of the cover bin before they are renormalised (missing types: 1); the draw consumes the same
    single uniform number with or without them, so later draws stay aligned.
    """
    for upper, probs in _TYPE_PROBABILITIES:
        if cover < upper:
            names = list(probs)
            p = np.array([probs[k] for k in names])
            if weights is not None:
                p = p * np.array([float(weights.get(k, 1.0)) for k in names])
            return names[int(rng.choice(len(names), p=p / p.sum()))]
    return "overcast"  # pragma: no cover - the last bin catches everything


def _thickness(
    n: np.ndarray, thr: float, ctype: CloudType, t_max: float, modulation: np.ndarray | None
) -> np.ndarray:
    x = n - np.float32(thr)
    growth = 1.0 - np.exp(-np.maximum(x, 0.0) / np.float32(ctype.softness))
    if modulation is not None:
        growth = growth * modulation
    inside = ctype.t_edge + (t_max - ctype.t_edge) * growth
    rim_width = np.float32(0.15 * ctype.softness)
    rim = VISIBLE_THICKNESS * np.clip(1.0 + x / rim_width, 0.0, 1.0)
    # keep the rim strictly below the visible threshold so that the cover is exact
    rim = np.minimum(rim, np.float32(np.nextafter(VISIBLE_THICKNESS, 0.0)))
    return np.clip(np.where(x >= 0, inside, rim), 0.0, 1.0).astype(np.float32)


def generate_clouds(
    height: int,
    width: int,
    cover: float,
    rng: np.random.Generator,
    *,
    cloud_type: str | None = None,
    type_weights: Mapping[str, float] | None = None,
    shadow_scale: float = 1.0,
) -> CloudLayer:
    """Draw clouds covering ``cover`` (0..1) of a ``height x width`` scene.

    Args:
        height, width: scene size in pixels.
        cover: fraction of pixels with thickness >= :data:`VISIBLE_THICKNESS`.
        rng: random generator.
        cloud_type: force a type of :data:`CLOUD_TYPES` instead of drawing one from the cover.
        type_weights: weights on the cover-dependent type probabilities
            (:func:`choose_cloud_type`); ignored with ``cloud_type``.
        shadow_scale: factor (> 0) on the type's cloud-to-shadow displacement range (sun
            elevation: a low sun casts longer shadows). The defaults give the draws and arrays of
            the reference (spring) simulator.
    """
    h, w = int(height), int(width)
    if not 0.0 <= cover <= 1.0:
        raise ConfigError(f"cloud cover must be in [0, 1], got {cover}")
    if not (isinstance(shadow_scale, int | float) and shadow_scale > 0):
        raise ConfigError(f"shadow_scale must be a number > 0, got {shadow_scale!r}")
    drawn = choose_cloud_type(cover, rng, type_weights)
    name = drawn if cloud_type is None else cloud_type
    if name not in CLOUD_TYPES:
        raise ConfigError(f"unknown cloud type {name!r}; choose from {sorted(CLOUD_TYPES)}")
    ctype = CLOUD_TYPES[name]
    spectrum_name = ctype.spectra[int(rng.integers(len(ctype.spectra)))]
    spectrum = CLOUD_SPECTRA_DN[spectrum_name] * np.float32(rng.uniform(0.85, 1.15))
    if cover <= 0.0:
        zeros = np.zeros((h, w), dtype=np.float32)
        return CloudLayer("none", zeros, zeros.copy(), spectrum, zeros.copy(), (0, 0))

    angle = rng.uniform(0.0, 2.0 * np.pi)
    dist = rng.uniform(*ctype.offset)
    if shadow_scale != 1.0:
        dist *= float(shadow_scale)
    dy, dx = int(round(dist * np.sin(angle))), int(round(dist * np.cos(angle)))
    ph, pw = h + abs(dy), w + abs(dx)
    scale = rng.uniform(*ctype.scale)
    n = fractal_noise(
        (ph, pw),
        rng,
        beta=ctype.beta,
        scale=scale,
        anisotropy=ctype.anisotropy,
        angle=rng.uniform(0.0, np.pi),
    )
    modulation = None
    if ctype.modulated:
        m = fractal_noise((ph, pw), rng, beta=3.0, scale=scale)
        modulation = np.clip(0.65 + 0.35 * m, 0.25, 1.0)
    t_max = rng.uniform(*ctype.t_max)

    # window of the scene in the padded domain, and the window its shadows come from
    cy, cx = max(dy, 0), max(dx, 0)
    sy, sx = cy - dy, cx - dx
    window = n[cy : cy + h, cx : cx + w]
    if cover >= 1.0:
        thr = float(window.min())
    else:
        thr = float(np.quantile(window, 1.0 - cover))
    thick_all = _thickness(n, thr, ctype, t_max, modulation)
    thickness = np.ascontiguousarray(thick_all[cy : cy + h, cx : cx + w])
    source = thick_all[sy : sy + h, sx : sx + w]
    shadow = ctype.shadow * np.clip(source / 0.5, 0.0, 1.0)
    shadow = ndimage.gaussian_filter(shadow.astype(np.float32), 1.5, mode="nearest")
    shadow[shadow < _MIN_SHADOW] = 0.0  # drop the invisible tails of the penumbra blur
    texture = fractal_noise((h, w), rng, beta=2.2, scale=12.0)
    return CloudLayer(name, thickness, shadow.astype(np.float32), spectrum, texture, (dy, dx))


def render_cloudy_band(
    band: int, path: float, surface: np.ndarray, clouds: CloudLayer
) -> np.ndarray:
    """Cloudy float DN ``[H, W]`` of one band from its ground parts and a cloud layer."""
    if clouds.cloud_type == "none":
        return surface + np.float32(path)
    weight = np.float32(SHADOW_WEIGHTS[band])
    ground = clouds.shadow * (-weight)
    ground += 1.0
    ground *= surface
    ground += np.float32(path)
    t = clouds.thickness
    cloud = clouds.spectrum[band] * (0.82 + 0.18 * t)
    cloud *= 1.0 + 0.07 * clouds.texture
    cloud -= ground
    cloud *= t
    ground += cloud  # (1 - t) * ground + t * cloud
    return ground
