"""cloudfree: SAR-guided cloud removal for Sentinel-2 imagery."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
