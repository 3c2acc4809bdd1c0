"""Cloud and cloud-shadow masks for Sentinel-2 L1C (SPEC section 3).

* :func:`rule_based` - the rule-based detector of DSen2-CR / GLF-CR (``variant="glf_cr"``,
  default) and of UnCRtainTS (``variant="uncrtaints"``), bit-exact with the official code;
  parts :func:`cloud_score` and :func:`shadow_mask`.
* :func:`carf_cloud_score`, :func:`carf_cloud_mask` - the CARF score with its NDSI snow filter.
* :func:`s2cloudless_mask` - s2cloudless as UnCRtainTS calls it (optional extra).
* :func:`compute_cloud_mask` - one dispatcher over :data:`CLOUD_MASK_METHODS`.
* :func:`cloud_cover` - fraction of cloud pixels in a mask.

All detectors take DN ``[13, H, W]`` (product band order, DN = reflectance x 10000) and work on
``float32(DN) / 10000``. Masks are int8 ``-1`` shadow / ``0`` clear / ``1`` cloud. The rule-based
masks are image-relative (shadow thresholds from the image minimum and mean): compute them on the
whole image, not per tile.
"""

from cloudfree.cloudmask._common import CloudMaskInputError
from cloudfree.cloudmask.carf import CARF_NDSI_SNOW, carf_cloud_mask, carf_cloud_score
from cloudfree.cloudmask.dispatch import (
    CLOUD_MASK_METHODS,
    DEFAULT_THRESHOLDS,
    MASK_ENCODING,
    compute_cloud_mask,
)
from cloudfree.cloudmask.rule_based import (
    RULE_BASED_VARIANTS,
    cloud_cover,
    cloud_score,
    rule_based,
    shadow_mask,
)
from cloudfree.cloudmask.s2cloudless_adapter import (
    S2CLOUDLESS_BANDS,
    require_s2cloudless,
    s2cloudless_mask,
)

__all__ = [
    "CARF_NDSI_SNOW",
    "CLOUD_MASK_METHODS",
    "CloudMaskInputError",
    "DEFAULT_THRESHOLDS",
    "MASK_ENCODING",
    "RULE_BASED_VARIANTS",
    "S2CLOUDLESS_BANDS",
    "carf_cloud_mask",
    "carf_cloud_score",
    "cloud_cover",
    "cloud_score",
    "compute_cloud_mask",
    "rule_based",
    "require_s2cloudless",
    "s2cloudless_mask",
    "shadow_mask",
]
