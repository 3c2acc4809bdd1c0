"""Season domains of the mono-temporal simulator: deterministic shifts away from spring.

SEN12MS-CR groups its ROIs by season (``ROIs1158_spring``, ``ROIs1868_summer``, ``ROIs1970_fall``,
``ROIs2017_winter``). :func:`cloudfree.synth.generate_scene` renders a season's *domain* with
``domain="summer"`` (or ``"ROIs1868_summer"``): the same seed gives the same land cover, parcels
and random fields as in spring (no extra random draws), seen under that season's vegetation
state, soil moisture, sun and clouds. This is the domain shift of "train on spring, test on the
other seasons".

**Spring is the reference and equals** ``domain=None`` **exactly** (bit-identical arrays): the
simulator's class spectra and cloud statistics were calibrated as one mid-latitude season, and
the other seasons shift away from it. Every season is defined for a northern mid-latitude site
(45 deg N) seen at the Sentinel-2 overpass (10:30 local solar time) in the middle of the
SEN12MS-CR acquisition window (spring mid-April, summer mid-July, fall mid-October, winter
mid-January), which gives the solar zenith angles ``theta`` below. Real ROIs lie at all
latitudes and both hemispheres; this is one representative site, not a per-ROI sun model.

The shifts, per season (spring: all neutral):

==========================  ========  ========  ========  ========
quantity                    spring    summer    fall      winter
==========================  ========  ========  ========  ========
solar zenith ``theta``      40 deg    30 deg    58 deg    69 deg
air mass ``m = 1/cos``      1.305     1.155     1.887     2.790
path radiance x             1         0.960     1.131     1.288
surface transmission B02    1         1.024     0.911     0.789
surface transmission B08    1         1.008     0.971     0.928
low-sun shading x           1         1.02      0.96      0.92
B09 water vapour x          1         0.90      1.00      1.10
state Q: forest             0         +0.4      -0.8      -1.2
state Q: grassland          0         +0.3      -0.5      -1.0
state Q: crop_dense         0         +0.8      -1.0      -1.4
state Q: crop_young         0         +1.0      -0.5      -0.8
state Q: crop_harvested     0         -0.6      +0.5      +1.0
state Q: bare_soil          0         -0.8      +0.6      +1.2
vegetation tint (B04)       1         1         1.15      1.08
cover exponent ``g``        1         1.5       0.8       0.6
mean drawn cover            0.50      0.40      0.56      0.63
shadow length x             1         0.83      1.38      1.76
==========================  ========  ========  ========  ========

* **Path radiance** (:data:`~cloudfree.synth.optical.PATH_DN`) scales with
  ``(m / m_spring) ** (1/3)``. Single scattering would scale it with the air mass itself
  (``** 1``, x 2.1 in winter); multiple scattering and the fixed nadir view path damp that, and
  the exponent 1/3 keeps the shift moderate (winter x 1.29 stays near the top of the per-scene
  aerosol range 0.8-1.35 of spring).
* **Surface term**: the downward direct-plus-diffuse transmittance changes by
  ``exp(-tau_b (m - m_spring))`` with effective per-band optical depths
  :data:`SURFACE_TAU` (0.20 at B01 falling to 0.02 at B12: about half the Rayleigh plus
  aerosol extinction, since part of the scattered light still reaches the ground), times a
  band-independent *shading* factor (self-shadowing of canopies, crop rows and micro-relief at
  low sun; BRDF). L1C reflectance is normalised by ``cos(theta)``, so a low sun does not darken
  a Lambertian ground by ``cos`` itself; it darkens through these two terms. Winter: the NIR
  surface signal about x 0.85, the blue one about x 0.72, with a brighter path on top.
* **B09 water vapour**: humid summers absorb more (surface and path x 0.9), dry winters less
  (x 1.1), on top of the per-scene draw 0.7-1.3.
* **Vegetation state / phenology**: a per-class shift of the state term ``Q`` (unit about
  one per-parcel standard deviation; the table above), shared by the optical and the SAR
  renderer as ``Q`` always is. For vegetated classes ``Q`` is vigour (summer peak, fall
  senescence, winter dormancy); for harvested and bare soil it is soil moisture (dry summers,
  wet falls and winters: darker soil, brighter SAR, +0.9 dB VV per unit on bare soil). Water
  turbidity and urban surfaces do not change. The shifted ``Q`` is clipped to +-3.5 (the
  unshifted one lies in +-2.5), which keeps every linear spectral factor positive.
* **Vegetation tint** (:data:`VEGETATION_TINT`): chlorophyll breakdown and drying of fall and
  winter foliage raise green, red, red edge and SWIR of the vegetated classes (forest, grassland,
  dense and young crops) beyond what ``Q`` does (fall B04 x 1.15, B12 x 1.10; winter about half).
  Resulting mean NDVI (B08, B04) of dense crops (clear TOA): spring ~0.74, summer ~0.78, fall
  ~0.66, winter ~0.63 (all vegetated pixels 0.65 / 0.69 / 0.56 / 0.52).
* **Cloud cover distribution**: a cover drawn from the seed (``cloud_cover=None``) is the
  spring draw ``u ~ U(0, 1)`` mapped to ``u ** g`` (monotone: the same seed is cloudier in
  winter than in spring, clearer in summer; ``P(cover >= 0.95)`` 5 % in spring, 8 % in winter,
  3 % in summer). An explicit ``cloud_cover`` is used as given; the dataset writer maps its
  stratified covers through :meth:`SeasonDomain.cover_from_uniform` instead.
* **Cloud-type mix** (:data:`CLOUD_TYPE_WEIGHTS`): the cover-dependent type probabilities of
  :mod:`cloudfree.synth.clouds` are multiplied by per-season weights and renormalised: summer
  convective (cumulus x 1.6, haze and overcast x 0.7), fall foggy (haze x 1.4, overcast x 1.2,
  cumulus x 0.8), winter stratiform (haze and overcast x 1.8, cumulus x 0.5, cirrus x 0.8). A
  type never drawn at a cover stays never drawn (full cover stays overcast). A forced
  ``cloud_type`` is used as given.
* **Shadow length**: the cloud-to-shadow displacement is proportional to ``tan(theta)``; the
  simulator scales its per-type displacement ranges by ``sqrt(tan theta / tan theta_spring)``
  (the square root again keeps it moderate: winter shadows 1.76 x, not 3.1 x, longer).

All shifts are deterministic functions of the season; they consume no random numbers, so a
season changes neither the land cover nor the per-scene draws of a seed, only how they look.
The multi-temporal generator (:mod:`cloudfree.synth.timeseries`) has its own continuous
phenology (per-parcel sinusoid over the dates) and does not use these domains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from cloudfree.bands import S2_L1C
from cloudfree.data.splits import SEN12MSCR_SEASONS, season_folder
from cloudfree.errors import ConfigError
from cloudfree.synth.landcover import LANDCOVER_CLASSES, LandCover

__all__ = [
    "CLOUD_TYPE_WEIGHTS",
    "REFERENCE_SEASON",
    "SEASONS",
    "SEASON_DOMAINS",
    "SURFACE_TAU",
    "VEGETATION_TINT",
    "SeasonDomain",
    "resolve_season",
]

_NB = len(S2_L1C)
_NC = len(LANDCOVER_CLASSES)

#: Short season names, in SEN12MS-CR order (the suffix of the ROI folder names).
SEASONS: tuple[str, ...] = tuple(s.split("_", 1)[1] for s in SEN12MSCR_SEASONS)
#: The season the others shift away from; ``domain="spring"`` equals ``domain=None``.
REFERENCE_SEASON = "spring"

#: Effective downward optical depth per band (B01 ... B12) for the surface transmission change.
SURFACE_TAU = np.array(
    [0.20, 0.16, 0.11, 0.08, 0.07, 0.06, 0.05, 0.05, 0.045, 0.04, 0.0, 0.025, 0.02],
    dtype=np.float64,
)

#: Classes whose spectra take the vegetation tint.
_VEGETATED = (LandCover.FOREST, LandCover.GRASSLAND, LandCover.CROP_DENSE, LandCover.CROP_YOUNG)

#: Multiplicative tint of the vegetated classes' surface spectra per season (B01 ... B12).
VEGETATION_TINT: Mapping[str, tuple[float, ...]] = MappingProxyType(
    {
        "spring": (1.0,) * _NB,
        "summer": (1.0,) * _NB,
        # B01   B02  B03   B04   B05   B06  B07  B08   B8A   B09   B10  B11   B12
        "fall": (1.0, 1.0, 1.04, 1.15, 1.08, 1.0, 1.0, 0.98, 0.98, 0.98, 1.0, 1.06, 1.10),
        "winter": (1.0, 1.0, 1.02, 1.08, 1.04, 1.0, 1.0, 0.99, 0.99, 0.99, 1.0, 1.04, 1.06),
    }
)

#: Per-season weights on the cloud-type probabilities (types not listed keep weight 1).
CLOUD_TYPE_WEIGHTS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "spring": MappingProxyType({}),
        "summer": MappingProxyType({"cumulus": 1.6, "haze": 0.7, "overcast": 0.7}),
        "fall": MappingProxyType({"cumulus": 0.8, "haze": 1.4, "overcast": 1.2}),
        "winter": MappingProxyType({"cumulus": 0.5, "haze": 1.8, "cirrus": 0.8, "overcast": 1.8}),
    }
)

_STATE_CLIP = 3.5
#: Path-radiance air-mass exponent (1 would be single scattering; see the module docstring).
_PATH_EXPONENT = 1.0 / 3.0


def _class_vector(values: Mapping[LandCover, float]) -> tuple[float, ...]:
    return tuple(float(values.get(LandCover(c), 0.0)) for c in range(_NC))


@dataclass(frozen=True)
class SeasonDomain:
    """One season's shifts (see the module docstring for the model and the numbers).

    Attributes:
        name: short season name (``spring``, ``summer``, ``fall``, ``winter``).
        sun_zenith_deg: solar zenith angle at the overpass of the representative site.
        shading: band-independent low-sun shading factor on the surface term.
        b09_vapour: water-vapour factor on B09 (surface and path).
        state_shift: additive shift of the state term ``Q`` per class id.
        cover_exponent: ``g`` of the cover mapping ``u -> u ** g``.
    """

    name: str
    sun_zenith_deg: float
    shading: float
    b09_vapour: float
    state_shift: tuple[float, ...]
    cover_exponent: float
    _reference_zenith: float = field(default=40.0, repr=False)

    @property
    def is_reference(self) -> bool:
        """True for spring: every shift is neutral and the generator skips them."""
        return self.name == REFERENCE_SEASON

    @property
    def air_mass(self) -> float:
        """``1 / cos(theta)`` at the overpass."""
        return 1.0 / math.cos(math.radians(self.sun_zenith_deg))

    @property
    def _delta_air_mass(self) -> float:
        return self.air_mass - 1.0 / math.cos(math.radians(self._reference_zenith))

    def path_gain(self) -> np.ndarray:
        """float32 ``[13]`` factor on the atmospheric path term per band."""
        ratio = self.air_mass * math.cos(math.radians(self._reference_zenith))
        gain = np.full(_NB, ratio**_PATH_EXPONENT, dtype=np.float64)
        gain[9] *= self.b09_vapour
        return gain.astype(np.float32)

    def surface_gain(self) -> np.ndarray:
        """float32 ``[classes, 13]`` factor on the class surface spectra: transmission x
        shading x water vapour (B09) for every class, times the tint for vegetated classes."""
        band = np.exp(-SURFACE_TAU * self._delta_air_mass) * self.shading
        band[9] *= self.b09_vapour
        gain = np.tile(band, (_NC, 1))
        tint = np.asarray(VEGETATION_TINT[self.name], dtype=np.float64)
        for c in _VEGETATED:
            gain[int(c)] *= tint
        return gain.astype(np.float32)

    @property
    def cloud_type_weights(self) -> Mapping[str, float]:
        """Weights on the cloud-type probabilities (missing types: 1)."""
        return CLOUD_TYPE_WEIGHTS[self.name]

    @property
    def shadow_scale(self) -> float:
        """Factor on the cloud-to-shadow displacement, ``sqrt(tan theta / tan theta_spring)``."""
        ratio = math.tan(math.radians(self.sun_zenith_deg)) / math.tan(
            math.radians(self._reference_zenith)
        )
        return math.sqrt(ratio)

    def shift_state(self, state: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """float32 ``[H, W]``: ``clip(state + shift[class], -3.5, 3.5)`` (a new array)."""
        shift = np.asarray(self.state_shift, dtype=np.float32)[classes]
        return np.clip(state + shift, -_STATE_CLIP, _STATE_CLIP).astype(np.float32)

    def cover_from_uniform(self, u: float) -> float:
        """Map a spring cover / uniform quantile ``u`` in [0, 1] to this season's cover."""
        u = float(u)
        if not 0.0 <= u <= 1.0:
            raise ConfigError(f"cloud cover must be in [0, 1], got {u}")
        return u if self.cover_exponent == 1.0 else u**self.cover_exponent


#: The four season domains by short name.
SEASON_DOMAINS: Mapping[str, SeasonDomain] = MappingProxyType(
    {
        "spring": SeasonDomain("spring", 40.0, 1.0, 1.0, (0.0,) * _NC, 1.0),
        "summer": SeasonDomain(
            "summer",
            30.0,
            1.02,
            0.90,
            _class_vector(
                {
                    LandCover.FOREST: 0.4,
                    LandCover.GRASSLAND: 0.3,
                    LandCover.CROP_DENSE: 0.8,
                    LandCover.CROP_YOUNG: 1.0,
                    LandCover.CROP_HARVESTED: -0.6,
                    LandCover.BARE_SOIL: -0.8,
                }
            ),
            1.5,
        ),
        "fall": SeasonDomain(
            "fall",
            58.0,
            0.96,
            1.0,
            _class_vector(
                {
                    LandCover.FOREST: -0.8,
                    LandCover.GRASSLAND: -0.5,
                    LandCover.CROP_DENSE: -1.0,
                    LandCover.CROP_YOUNG: -0.5,
                    LandCover.CROP_HARVESTED: 0.5,
                    LandCover.BARE_SOIL: 0.6,
                }
            ),
            0.8,
        ),
        "winter": SeasonDomain(
            "winter",
            69.0,
            0.92,
            1.10,
            _class_vector(
                {
                    LandCover.FOREST: -1.2,
                    LandCover.GRASSLAND: -1.0,
                    LandCover.CROP_DENSE: -1.4,
                    LandCover.CROP_YOUNG: -0.8,
                    LandCover.CROP_HARVESTED: 1.0,
                    LandCover.BARE_SOIL: 1.2,
                }
            ),
            0.6,
        ),
    }
)


def resolve_season(name: str) -> SeasonDomain:
    """The domain of a season given by short name (``"winter"``, any case) or by SEN12MS-CR
    folder name (``"ROIs2017_winter"``): the names the dataset reader's ``seasons=`` accepts
    (:func:`cloudfree.data.splits.season_folder`)."""
    try:
        short = season_folder(name).split("_", 1)[1]
    except ConfigError:
        short = None
    if short in SEASON_DOMAINS:
        return SEASON_DOMAINS[short]
    raise ConfigError(
        f"unknown season domain {name!r}; choose from {list(SEASONS)} or {list(SEN12MSCR_SEASONS)}"
    )
