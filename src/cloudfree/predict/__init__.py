"""Cloud removal for whole georeferenced scenes (``cloudfree predict``).

* :func:`load_model` - the network from a pretrained directory or an official checkpoint;
* :func:`predict_scene` - one scene of any size: S1 warped onto the S2 grid window by window
  (no S1 at all for a model that uses no SAR), tiled inference with blended overlaps, bounded
  memory, atomic GeoTIFF output on the S2 grid;
* :func:`read_scene_list` / :func:`predict_many` - many scenes from a CSV, resumable, sharded
  between ``torchrun`` processes.

See the modules' docstrings for every decision (tiling, blending, nodata, band mapping).
"""

from cloudfree.io.bandmap import map_bands, parse_band_list
from cloudfree.predict.align import SAR_BANDS, SarOnGrid
from cloudfree.predict.batch import (
    BatchResult,
    SceneJob,
    distributed_rank,
    predict_many,
    read_scene_list,
    shard,
)
from cloudfree.predict.inputs import resolve_optical_nodata
from cloudfree.predict.quicklook import QuicklookCollector, render_side_by_side
from cloudfree.predict.scene import OUTPUT_DTYPES, PredictOptions, PredictResult, predict_scene
from cloudfree.predict.tiling import RowAccumulator, TileGrid, blend_weights, tile_starts
from cloudfree.predict.weights import LoadedModel, load_model, resolve_device

__all__ = [
    "OUTPUT_DTYPES",
    "SAR_BANDS",
    "BatchResult",
    "LoadedModel",
    "PredictOptions",
    "PredictResult",
    "QuicklookCollector",
    "RowAccumulator",
    "SarOnGrid",
    "SceneJob",
    "TileGrid",
    "map_bands",
    "blend_weights",
    "distributed_rank",
    "load_model",
    "parse_band_list",
    "predict_many",
    "predict_scene",
    "read_scene_list",
    "render_side_by_side",
    "resolve_device",
    "resolve_optical_nodata",
    "shard",
    "tile_starts",
]
