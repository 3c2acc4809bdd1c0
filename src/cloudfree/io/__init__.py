"""Raster input and output."""

from cloudfree.io.geotiff import (
    Raster,
    RasterInfo,
    RasterWriter,
    Window,
    open_raster,
    raster_info,
    read_raster,
    write_raster,
)
from cloudfree.io.png import save_png

__all__ = [
    "Raster",
    "RasterInfo",
    "RasterWriter",
    "Window",
    "open_raster",
    "raster_info",
    "read_raster",
    "save_png",
    "write_raster",
]
