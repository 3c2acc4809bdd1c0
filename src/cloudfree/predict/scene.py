"""Cloud removal for one georeferenced scene of any size: :func:`predict_scene`.

Pipeline (every step window by window, memory bounded by the scene *width* and the tile size):

1. The optical file's bands are mapped to the model's band set (:mod:`cloudfree.predict.inputs`)
   and S1, when given, is put onto the optical grid (:class:`~cloudfree.predict.align.SarOnGrid`).
2. Tiles (:class:`~cloudfree.predict.tiling.TileGrid`) are read from the inputs, normalised with
   the model's protocol (:func:`~cloudfree.normalization.normalize_optical` /
   :func:`~cloudfree.normalization.normalize_sar`), batched through the network and blended into
   a :class:`~cloudfree.predict.tiling.RowAccumulator`; finished row chunks are written by a
   :class:`~cloudfree.io.RasterWriter` (atomic: the output appears under its final name only when
   the whole scene succeeded, also under Ctrl-C or an error midway).

Decisions:

* **Without SAR** (``sar=None``). Allowed only for a model whose spec says
  ``needs_sar=False`` (optical-only networks such as ``spa_gan``, ``dsen2cr_no_sar``); any other
  model is refused with a :class:`ConfigError` naming it before anything is read or written.
  Nothing of S1 is then opened, aligned or tiled: the network is called with ``sar=None``,
  a pixel counts as predictable where the optical input is valid, the tags say
  ``SOURCE_SAR=none`` / ``SAR_RESAMPLING=none (no SAR)`` and
  :attr:`PredictResult.sar_coverage` is None.
* **SAR given to an optical-only model** keeps the behaviour of every other model: S1 is read,
  checked and aligned, its footprint and nodata limit the output (the pixel set is that of a
  SAR model run on the same pair, so the two outputs compare on equal pixels, as the demo
  does), and its values never reach the network (:func:`~cloudfree.models.api.run_model`
  drops them). Leave S1 out to predict every valid optical pixel.
* **Invalid pixels.** Optical nodata/NaN and S1 nodata/NaN (or outside the S1 footprint) are
  invalid. They are filled for the network with the protocol's own fill (``normalize_*``:
  nanmean of the tile for ``glf_cr``/``dsen2cr``, a constant for ``uncrtaints``/``allclear``),
  never fed as the raw number, and the output is nodata there. A tile without a single pixel
  where both inputs are valid is not run through the network at all.
* **Output values.** The network output is converted back to DN with
  :func:`~cloudfree.normalization.denormalize_optical` (clipped to [0, 10000]). ``uint16``
  (default) writes ``round(DN)``, with valid pixels at least 1 because 0 is the nodata value;
  rounding makes the normalise / denormalise round trip exact for integer DN (an identity network
  gives back its input exactly, for DN in [1, 10000]). ``float32`` writes reflectance ``DN /
  10000`` with NaN as nodata. With ``pb04_offset=True`` the +1000 DN offset is removed from the
  input, and the output is in harmonised DN (offset not re-added); the ``pb04_offset_removed``
  tag says so.
* **--keep-clear.** The prediction replaces only pixels flagged by the mask: the rule-based
  detector's cloud pixels (``compute_cloud_mask(..., "rule_based") == 1``; its shadow class too
  with ``replace_shadow=True``: off by default because the image-relative shadow rule flags much
  dark ground, 37 % of the real SEN12MS-CR patch), computed once on the **whole** cloudy scene
  (the detector is image-relative, SPEC section 3; this needs the 13 L1C bands and holds them in
  memory once, so for huge scenes prefer ``mask=``), dilated by ``mask_dilation`` pixels
  (default 2, square structuring element) to cover soft cloud edges; or a mask GeoTIFF on the
  optical grid where non-zero (or the mask's nodata) means replace (first band; no dilation
  unless asked); the mask file must have one band with values 0, 1 (-1, cloudmask's shadow,
  also replaces) or its nodata, anything else is refused. Clear pixels keep the input value
  exactly (the harmonised DN with ``pb04_offset``), and are kept even where S1 is missing, since
  they need no prediction. **Flagged pixels that cannot be predicted** (no valid S1 there,
  outside the S1 footprint) **keep their input value too** (cloudy, but never nodata where the
  input had data); :attr:`PredictResult.kept_unpredicted_fraction` says how many.
* **S1 coverage.** :attr:`PredictResult.sar_coverage` is the fraction of valid optical pixels
  with a valid S1 value; the CLI warns when it is below 100 % (without ``--keep-clear`` the
  output is nodata elsewhere).
* **Input scales** (:mod:`cloudfree.io.checks`, on a decimated sample before any tile is run):
  the optical file must hold L1C DN (``optical_scale="reflectance"`` multiplies 0..1 floats by
  10000), S1 dB (``sar_units="linear"`` converts), with ``sar_nodata`` / ``sar_bands`` to
  declare a fill value or the file's polarisations (see
  :class:`~cloudfree.predict.align.SarOnGrid`).
* **Uncertainty.** For a model with a variance head (UnCRtainTS), the predicted standard
  deviation per band, ``sqrt(variance)`` converted to reflectance units, blended over tile
  overlaps with the same weights as the prediction, is written to ``<out stem>_std.tif``
  (``std_path``; float32, NaN where nothing was predicted), under the same overwrite rules;
  ``write_std=False`` skips it. Each file is written atomically on its own.
* **GDAL block cache.** Reads go through GDAL's block cache, which by default grows to 5 % of
  RAM; unless ``GDAL_CACHEMAX`` is set in the environment it is limited to ``gdal_cache_mb``
  (64 MiB) while predicting, so that memory does not grow with the scene.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.errors import RasterioError
from rasterio.windows import Window

from cloudfree import __version__
from cloudfree.bands import S2_L1C, harmonize_pb04
from cloudfree.errors import ConfigError, InputFileError
from cloudfree.io import RasterInfo, RasterWriter, open_raster, raster_info
from cloudfree.io.bandmap import BandMap, map_bands, parse_band_fills
from cloudfree.io.checks import OPTICAL_SCALES, SAR_UNITS, parse_sar_bands, sample_shape
from cloudfree.io.geotiff import describe_read_error, raster_files
from cloudfree.io.outputs import check_output, same_file
from cloudfree.models.api import run_model, spec_of
from cloudfree.models.inference import describe_runtime
from cloudfree.normalization import (
    denormalize_optical,
    normalize_optical,
    normalize_sar,
    reflectance_factor,
)
from cloudfree.predict.align import SAR_BANDS, SarOnGrid
from cloudfree.predict.inputs import check_optical_file, optical_factor, resolve_optical_nodata
from cloudfree.predict.quicklook import QuicklookCollector, save_png
from cloudfree.predict.tiling import RowAccumulator, TileGrid
from cloudfree.predict.weights import LoadedModel

__all__ = [
    "OUTPUT_DTYPES",
    "PredictOptions",
    "PredictResult",
    "check_sar_given",
    "needs_sar",
    "predict_scene",
    "sar_coverage_warning",
]

#: Output data types: DN (uint16, nodata 0) or reflectance (float32, nodata NaN).
OUTPUT_DTYPES: tuple[str, ...] = ("uint16", "float32")
#: Block size of the output GeoTIFF; the accumulator flushes rows in multiples of it.
_BLOCK = 256
#: Columns written per piece when rows are flushed (a multiple of ``_BLOCK``).
_FLUSH_COLS = 1024
_OPT_VALID = np.uint8(1)
_SAR_VALID = np.uint8(2)
_RGB = ("B04", "B03", "B02")


@dataclass
class PredictOptions:
    """Settings of :func:`predict_scene` (the CLI options of ``cloudfree predict``)."""

    tile_size: int = 256
    overlap: int = 32
    batch_size: int = 4
    dtype: str = "uint16"
    file_bands: str | Sequence[str] | None = None
    fill_bands: Sequence[str] | None = None
    pb04_offset: bool = False
    optical_nodata: float | str | None = "auto"
    optical_scale: str = "dn"
    sar_units: str = "db"
    sar_nodata: float | None = None
    sar_bands: str | None = None
    keep_clear: bool = False
    replace_shadow: bool = False
    mask: Path | None = None
    mask_dilation: int | None = None
    cog: bool = False
    quicklook: Path | None = None
    overwrite: bool = False
    progress: bool = True
    gdal_cache_mb: int = 64
    #: for a model with a variance head: write its standard deviation (module docstring)
    write_std: bool = True
    std_path: Path | None = None

    def validate(self) -> None:
        """Raise :class:`ConfigError` for an inconsistent setting."""
        for name in ("tile_size", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name.replace('_', ' ')} must be a positive integer")
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, int):
            raise ConfigError("overlap must be an integer")
        if self.overlap < 0 or 2 * self.overlap > self.tile_size:
            raise ConfigError(
                f"overlap must be between 0 and half the tile size ({self.tile_size // 2}), "
                f"got {self.overlap}"
            )
        if self.dtype not in OUTPUT_DTYPES:
            raise ConfigError(f"dtype must be one of {list(OUTPUT_DTYPES)}, got {self.dtype!r}")
        if self.mask is not None and not self.keep_clear:
            raise ConfigError("a mask is only used with --keep-clear")
        if self.replace_shadow and (not self.keep_clear or self.mask is not None):
            raise ConfigError(
                "--replace-shadow applies to the rule-based mask of --keep-clear (without --mask)"
            )
        if self.mask_dilation is not None and self.mask_dilation < 0:
            raise ConfigError(f"mask dilation must be >= 0, got {self.mask_dilation}")
        if self.optical_scale not in OPTICAL_SCALES:
            raise ConfigError(
                f"optical scale must be one of {list(OPTICAL_SCALES)}, got {self.optical_scale!r}"
            )
        if self.sar_units not in SAR_UNITS:
            raise ConfigError(f"SAR units must be one of {list(SAR_UNITS)}, got {self.sar_units!r}")
        parse_sar_bands(self.sar_bands)
        parse_band_fills(self.fill_bands)


@dataclass
class PredictResult:
    """What :func:`predict_scene` wrote."""

    path: Path
    height: int
    width: int
    bands: tuple[str, ...]
    tiles: int
    tiles_run: int
    valid_fraction: float
    replaced_fraction: float | None
    seconds: float
    quicklook: Path | None = None
    tags: dict[str, str] = field(default_factory=dict)
    #: Fraction of valid optical pixels with a valid S1 value (None: no S1 was read).
    sar_coverage: float | None = None
    #: ``--keep-clear``: fraction of the scene flagged for replacement but kept as input
    #: because no prediction was possible there (no valid S1).
    kept_unpredicted_fraction: float | None = None
    #: the standard-deviation GeoTIFF of a model with a variance head (None: none written)
    std_path: Path | None = None


def sar_coverage_warning(result: PredictResult, sar: str | os.PathLike[str] | None) -> str | None:
    """The warning for a scene whose S1 covers only part of the valid optical pixels (None
    when it covers all, or when no S1 was given): the percentage, and what the output holds
    where S1 is missing."""
    if sar is None or result.sar_coverage is None or result.sar_coverage >= 1.0:
        return None
    if result.kept_unpredicted_fraction:
        what = (
            f"; {100 * result.kept_unpredicted_fraction:.1f} % of the scene was flagged cloudy "
            "but kept its input there (no S1 to predict from)"
        )
    elif result.replaced_fraction is not None:
        what = ""
    else:
        what = "; the output is nodata where S1 is missing"
    return (
        f"Warning: {sar} covers only {100 * result.sar_coverage:.1f} % of the valid optical "
        f"pixels{what}"
    )


# ----------------------------------------------------------------------------- helpers
def _run_inputs(
    loaded: LoadedModel, optical: Path, sar: Path | None, mask: Path | None
) -> list[Path]:
    """Every file the run reads: optical, SAR (when given), mask and the weights (a file, or a
    directory's files), for :func:`cloudfree.io.outputs.check_output`."""
    weights = Path(loaded.weights_path)
    files = [*raster_files(optical), *(raster_files(sar) if sar is not None else []), weights]
    files += [mask] if mask is not None else []
    if weights.is_dir():
        files += [f for f in weights.iterdir() if f.is_file()]
    return files


def _gdal_env(cache_mb: int) -> rasterio.Env:
    if "GDAL_CACHEMAX" in os.environ:
        return rasterio.Env()
    # in bytes: set at run time (after GDAL's cache exists), GDAL 3.10 reads a small number
    # such as 64 as bytes, not megabytes, which would disable the cache altogether
    return rasterio.Env(GDAL_CACHEMAX=int(cache_mb) * 1024 * 1024)


def _dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0:
        return mask
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, structure=np.ones((3, 3), dtype=bool), iterations=pixels)


class _ReplaceMask:
    """Where ``--keep-clear`` puts the prediction: a whole-scene array or a mask file."""

    def __init__(self, array: np.ndarray | None, source: Any, dilation: int, desc: str) -> None:
        self.array = array
        self.source = source
        self.dilation = dilation
        self.desc = desc
        self.height = array.shape[0] if array is not None else int(source.height)

    def rows(self, row: int, n: int, width: int) -> np.ndarray:
        if self.array is not None:
            return self.array[row : row + n]
        pad = self.dilation
        r0, r1 = max(0, row - pad), min(self.height, row + n + pad)
        try:
            m = self.source.read(1, window=Window(0, r0, width, r1 - r0))
        except RasterioError as exc:
            name = self.source.name
            raise InputFileError(name, describe_read_error(exc, name)) from None
        nod = self.source.nodata
        _check_mask_values(m, nod, self.source.name)
        rep = m != 0
        if np.issubdtype(m.dtype, np.floating):
            rep |= np.isnan(m)
        if nod is not None and not np.isnan(nod):
            rep |= m == nod
        rep = _dilate(rep, pad)
        return rep[row - r0 : row - r0 + n]

    def close(self) -> None:
        if self.source is not None:
            self.source.close()


def _open_mask_file(path: Path, grid: RasterInfo, dilation: int) -> _ReplaceMask:
    src = open_raster(path)
    if src.count != 1:
        n = src.count
        src.close()
        raise InputFileError(
            path,
            f"has {n} bands; a --keep-clear mask has exactly one (0 keep, non-zero replace), "
            "e.g. the output of `cloudfree cloudmask`",
        )
    ok = (
        src.height > 0
        and (src.height, src.width) == (grid.height, grid.width)
        and src.crs == grid.crs
        and src.transform.almost_equals(grid.transform)
    )
    if not ok:
        src.close()
        raise InputFileError(
            path,
            f"is not on the optical grid ({src.width}x{src.height}, {src.crs}; expected "
            f"{grid.width}x{grid.height}, {grid.crs} with the same transform)",
        )
    mask = _ReplaceMask(None, src, dilation, f"file {path.name} (non-zero = replace)")
    try:
        sample = src.read(1, out_shape=sample_shape(src.height, src.width))
        _check_mask_values(sample, src.nodata, path)
    except (InputFileError, RasterioError) as exc:
        src.close()
        if isinstance(exc, InputFileError):
            raise
        raise InputFileError(path, describe_read_error(exc, path)) from None
    return mask


#: Values a --keep-clear mask may hold (besides its nodata): cloudmask's encoding.
_MASK_VALUES = (-1, 0, 1)


def _check_mask_values(m: np.ndarray, nodata: float | None, path: Any) -> None:
    ok = np.isin(m, _MASK_VALUES)
    if np.issubdtype(m.dtype, np.floating):
        ok |= np.isnan(m)
    if nodata is not None and not np.isnan(nodata):
        ok |= m == nodata
    if not ok.all():
        bad = np.unique(m[~ok])[:5]
        raise InputFileError(
            path,
            f"holds values other than 0, 1 (-1 shadow) and its nodata, e.g. "
            f"{', '.join(f'{v:g}' for v in bad)}; a --keep-clear mask is 0 (keep) or 1 (replace)",
        )


def _rule_based_mask(
    src: Any, info: RasterInfo, opts: PredictOptions, nodata: float | None, dilation: int
) -> _ReplaceMask:
    from cloudfree.cloudmask import compute_cloud_mask

    fills = parse_band_fills(opts.fill_bands)
    try:
        bandmap = map_bands(
            info, S2_L1C.names, opts.file_bands, fills, who="the rule-based cloud mask"
        )
    except InputFileError as exc:
        raise InputFileError(
            info.path, f"{exc.problem}; or give a mask on the optical grid with --mask"
        ) from None
    try:
        raw = src.read([p + 1 for p in bandmap.file_positions]).astype(np.float32, copy=False)
    except RasterioError as exc:
        raise InputFileError(info.path, describe_read_error(exc, info.path)) from None
    bad = ~np.isfinite(raw).all(axis=0)
    if nodata is not None and not np.isnan(nodata):
        bad |= (raw == np.float32(nodata)).any(axis=0)
    factor = optical_factor(opts.optical_scale)
    if factor != 1.0:
        raw *= np.float32(factor)
    dn = bandmap.assemble(raw)
    del raw
    if opts.pb04_offset:
        dn = harmonize_pb04(dn)
    mask = compute_cloud_mask(np.nan_to_num(dn), "rule_based", valid=~bad)
    del dn
    replace = _dilate(mask != 0 if opts.replace_shadow else mask == 1, dilation)
    what = "cloud and shadow" if opts.replace_shadow else "cloud"
    desc = f"rule_based ({what}, whole scene, dilated {dilation} px)"
    return _ReplaceMask(replace, None, 0, desc)


def needs_sar(loaded: Any) -> bool:
    """Whether the loaded network uses SAR (its spec's ``needs_sar``; a predictor without a
    network, such as a temporal composite, uses none)."""
    model = getattr(loaded, "model", None)
    return model is not None and spec_of(model).inputs.needs_sar


def check_sar_given(loaded: Any, sar: object | None, what: str = "--sar S1.tif") -> None:
    """Raise :class:`ConfigError` when ``sar`` is None but the network needs SAR (one line
    naming the model and what to give: ``what``)."""
    if sar is None and needs_sar(loaded):
        raise ConfigError(
            f"model {loaded.name!r} needs Sentinel-1: give {what} (only models that use no "
            "SAR, 'no SAR' in `cloudfree models list`, e.g. spa_gan, run on the optical alone)"
        )


# ----------------------------------------------------------------------------- predict
def predict_scene(
    loaded: LoadedModel,
    optical: str | os.PathLike[str],
    sar: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    options: PredictOptions | None = None,
    *,
    progress_position: int = 0,
    on_tile: Callable[[int], None] | None = None,
) -> PredictResult:
    """Remove clouds from a whole optical scene with its S1 image; write ``out`` on its grid.

    Args:
        loaded: the network (:func:`cloudfree.predict.load_model`).
        optical: cloudy Sentinel-2 GeoTIFF (L1C DN; see :class:`PredictOptions.file_bands`).
        sar: Sentinel-1 GeoTIFF (VV, VH in dB), any CRS/resolution/extent overlapping the scene;
            None for a model that uses no SAR (module docstring: nothing of S1 is read then).
        out: output GeoTIFF (written atomically).
        options: tiling, output and compositing settings.
        progress_position: tqdm ``position`` of the tile bar (list mode stacks bars).
        on_tile: called with the number of tiles done after each batch (tests, GUIs).

    Returns:
        A :class:`PredictResult`. Raises :class:`InputFileError` / :class:`ConfigError` with the
        offending file named; no output file exists then.
    """
    opts = options or PredictOptions()
    opts.validate()
    check_sar_given(loaded, sar)
    t0 = time.perf_counter()
    optical, out = Path(optical), Path(out)
    sar = Path(sar) if sar is not None else None
    inputs = _run_inputs(loaded, optical, sar, opts.mask)
    check_output(out, inputs=inputs, overwrite=opts.overwrite)
    if opts.quicklook is not None:
        if same_file(opts.quicklook, out):
            raise ConfigError("the quicklook and the output must be different files")
        check_output(opts.quicklook, inputs=inputs, overwrite=opts.overwrite, what="quicklook")
    std_path = std_output_path(out, opts) if opts.write_std and _has_variance(loaded) else None
    if std_path is not None:
        if same_file(std_path, out):
            raise ConfigError("the standard-deviation file and the output must be different files")
        check_output(std_path, inputs=inputs, overwrite=opts.overwrite, what="standard deviation")
    info = raster_info(optical)
    fills = parse_band_fills(opts.fill_bands)
    bandmap = map_bands(info, loaded.bands.names, opts.file_bands, fills)
    nodata = resolve_optical_nodata(info, opts.optical_nodata)
    grid = TileGrid(info.height, info.width, opts.tile_size, opts.overlap)
    if opts.quicklook is not None:
        missing = [b for b in _RGB if b not in loaded.bands.names]
        if missing:
            raise ConfigError(
                f"a quicklook needs B04, B03 and B02 but model {loaded.name!r} predicts "
                f"{','.join(loaded.bands.names)}"
            )
        try:
            import PIL  # noqa: F401  (checked before the long run, used at its end)
        except ImportError:
            raise ConfigError("--quicklook needs Pillow: pip install pillow") from None
    rgb = [loaded.bands.names.index(b) for b in _RGB] if opts.quicklook is not None else []

    with _gdal_env(opts.gdal_cache_mb):
        src = open_raster(optical)
        replace: _ReplaceMask | None = None
        try:
            check_optical_file(src, info, bandmap, nodata, opts.optical_scale)
            s1_opts = {"units": opts.sar_units, "nodata": opts.sar_nodata, "bands": opts.sar_bands}
            with ExitStack() as stack:
                s1 = (
                    stack.enter_context(SarOnGrid(sar, info, **s1_opts))
                    if sar is not None
                    else None
                )
                if opts.keep_clear:
                    if opts.mask is not None:
                        dil = opts.mask_dilation or 0
                        replace = _open_mask_file(opts.mask, info, dil)
                    else:
                        dil = 2 if opts.mask_dilation is None else opts.mask_dilation
                        replace = _rule_based_mask(src, info, opts, nodata, dil)
                tags = _tags(loaded, opts, optical, sar, s1, nodata, replace, bandmap)
                run = _SceneRun(loaded, opts, info, src, s1, bandmap, nodata, grid, replace)
                quick = QuicklookCollector(info.height, info.width) if rgb else None
                with (
                    output_writer(out, loaded.bands, info, opts, tags) as writer,
                    optional_std_writer(std_path, loaded.bands, info, opts, tags, out) as std_w,
                ):
                    run.std_writer = std_w
                    image = run.execute(writer, quick, rgb, progress_position, on_tile, sar)
        finally:
            src.close()
            if replace is not None:
                replace.close()
    ql_path = save_png(image, opts.quicklook) if image is not None else None
    return run.result(out, len(grid), time.perf_counter() - t0, tags, std_path, ql_path)


def _has_variance(loaded: Any) -> bool:
    model = getattr(loaded, "model", None)
    return model is not None and spec_of(model).outputs.has_variance


def std_output_path(out: Path, opts: PredictOptions) -> Path:
    """``opts.std_path``, else ``<out stem>_std.tif`` next to ``out``."""
    return (
        Path(opts.std_path) if opts.std_path is not None else out.with_name(f"{out.stem}_std.tif")
    )


@contextmanager
def optional_std_writer(
    path: Path | None,
    bands: Any,
    info: RasterInfo,
    opts: PredictOptions,
    tags: dict[str, str],
    mean: Path,
) -> Iterator[RasterWriter | None]:
    """The standard-deviation GeoTIFF (float32 reflectance, NaN where not predicted), or None."""
    if path is None:
        yield None
        return
    with RasterWriter(
        path,
        count=len(bands),
        height=info.height,
        width=info.width,
        dtype="float32",
        crs=info.crs,
        transform=info.transform,
        nodata=float("nan"),
        descriptions=[f"{b}_std" for b in bands.names],
        tags={**tags, "UNITS": "predicted standard deviation, reflectance", "MEAN": mean.name},
        cog=opts.cog,
        blocksize=_BLOCK,
    ) as w:
        yield w


def output_writer(
    out: Path, bands: Any, info: RasterInfo, opts: PredictOptions, tags: dict[str, str]
) -> RasterWriter:
    """The prediction's GeoTIFF on the optical grid: one named band per model band, nodata 0
    (uint16 DN) or NaN (float32 reflectance), written atomically."""
    return RasterWriter(
        out,
        count=len(bands),
        height=info.height,
        width=info.width,
        dtype=opts.dtype,
        crs=info.crs,
        transform=info.transform,
        nodata=0 if opts.dtype == "uint16" else float("nan"),
        descriptions=list(bands.names),
        tags=tags,
        cog=opts.cog,
        blocksize=_BLOCK,
    )


def _tags(
    loaded: LoadedModel,
    opts: PredictOptions,
    optical: Path,
    sar: Path | None,
    s1: SarOnGrid | None,
    nodata: float | None,
    replace: _ReplaceMask | None,
    bandmap: BandMap,
) -> dict[str, str]:
    units = "DN = reflectance x 10000" if opts.dtype == "uint16" else "reflectance"
    tags = {
        "CLOUDFREE_VERSION": __version__,
        "MODEL": loaded.name,
        "WEIGHTS": loaded.weights_path.name,
        "WEIGHTS_SOURCE": loaded.source,
        "WEIGHTS_SHA256": loaded.weights_sha256,
        "RUNTIME": describe_runtime(getattr(loaded, "model", None)),
        "NORMALIZATION_PROTOCOL": loaded.protocol,
        "BANDS": ",".join(loaded.bands.names),
        "UNITS": units,
        "TILE_SIZE": str(opts.tile_size),
        "OVERLAP": str(opts.overlap),
        "BLENDING": "separable sin^2 ramp over the overlap",
        "PB04_OFFSET_REMOVED": str(bool(opts.pb04_offset)),
        "OPTICAL_NODATA": "none" if nodata is None else repr(nodata),
        "SAR_RESAMPLING": s1.resampling_name if s1 is not None else "none (no SAR)",
        "KEEP_CLEAR": "False" if replace is None else f"True: {replace.desc}",
        "SOURCE_OPTICAL": optical.name,
        "SOURCE_SAR": sar.name if sar is not None else "none",
    }
    exported_from = getattr(getattr(loaded, "model", None), "exported_from_sha256", None)
    if exported_from:
        tags["EXPORTED_FROM_WEIGHTS_SHA256"] = str(exported_from)
    if bandmap.fills:
        tags["FILLED_BANDS"] = f"{bandmap.describe()} (constant input, not observed)"
    return tags


class _SceneRun:
    """State of one scene's tiled inference (kept out of :func:`predict_scene` for clarity)."""

    def __init__(
        self,
        loaded: LoadedModel,
        opts: PredictOptions,
        info: RasterInfo,
        src: Any,
        s1: SarOnGrid | None,
        bandmap: BandMap,
        nodata: float | None,
        grid: TileGrid,
        replace: _ReplaceMask | None,
    ) -> None:
        self.loaded = loaded
        self.opts = opts
        self.info = info
        self.src = src
        self.s1 = s1
        self.bandmap = bandmap
        self.indexes = [p + 1 for p in bandmap.file_positions]
        self.nodata = nodata
        self.grid = grid
        self.replace = replace
        self.weights = grid.weights()
        self.tiles_run = 0
        self.n_written = 0
        self.n_replaced = 0
        self.n_opt = 0
        self.n_sar = 0
        self.n_both = 0
        self.n_kept_unpredicted = 0
        self.factor = np.float32(optical_factor(opts.optical_scale))
        self.n_out = len(bandmap.names)
        self.with_std = bool(opts.write_std) and _has_variance(loaded)
        #: normalised units -> reflectance, for the standard deviation (linear protocols)
        self.std_factor = np.float32(reflectance_factor(loaded.protocol))
        self.std_writer: RasterWriter | None = None

    def result(
        self,
        out: Path,
        tiles: int,
        seconds: float,
        tags: dict[str, str],
        std_path: Path | None,
        quicklook: Path | None = None,
    ) -> PredictResult:
        """What the finished run wrote (fractions of the whole scene)."""
        n_pix = float(self.info.height * self.info.width)
        masked = self.replace is not None
        return PredictResult(
            path=out,
            height=self.info.height,
            width=self.info.width,
            bands=tuple(self.bandmap.names),
            tiles=tiles,
            tiles_run=self.tiles_run,
            valid_fraction=self.n_written / n_pix,
            replaced_fraction=(self.n_replaced / n_pix) if masked else None,
            seconds=seconds,
            quicklook=quicklook,
            tags=tags,
            sar_coverage=(
                (self.n_both / self.n_opt) if self.n_opt and self.s1 is not None else None
            ),
            kept_unpredicted_fraction=(self.n_kept_unpredicted / n_pix) if masked else None,
            std_path=std_path,
        )

    # -------------------------------------------------------------- reading
    def _read_optical(self, window: Window) -> np.ndarray:
        try:
            arr = self.src.read(self.indexes, window=window).astype(np.float32, copy=False)
        except RasterioError as exc:
            raise InputFileError(self.info.path, describe_read_error(exc, self.info.path)) from None
        if self.factor != 1:
            arr *= self.factor  # 0..1 reflectance to DN (--optical-scale reflectance)
        return self.bandmap.assemble(arr)

    def _tile(self, row: int, col: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """``(optical, sar, flags)`` of one tile; without S1, ``sar`` is None and the SAR flag
        repeats the optical one (nothing else limits the prediction)."""
        g, p = self.grid, self.loaded.protocol
        window = Window(col, row, g.tile_w, g.tile_h)
        opt, opt_valid = normalize_optical(
            self._read_optical(window),
            p,
            pb04_offset=self.opts.pb04_offset,
            nodata=None if self.nodata is None else self.nodata * float(self.factor),
        )
        sar: np.ndarray | None = None
        sar_valid = opt_valid
        if self.s1 is not None:
            sar, sar_valid = normalize_sar(self.s1.read(window), p, bands=SAR_BANDS)
        flags = opt_valid.astype(np.uint8) * _OPT_VALID + sar_valid.astype(np.uint8) * _SAR_VALID
        return opt, sar, flags

    # -------------------------------------------------------------- network
    def _run_batch(self, opt: list[np.ndarray], sar: list[np.ndarray | None]) -> np.ndarray:
        dev = self.loaded.device
        xo = torch.from_numpy(np.stack(opt)).to(dev)
        xs = None
        if sar[0] is not None:
            xs = torch.from_numpy(np.stack(sar)).to(dev)  # type: ignore[arg-type]
        with torch.inference_mode():
            out = run_model(self.loaded.model, optical=xo, sar=xs)
        y = out.pred
        if tuple(y.shape) != tuple(xo.shape):
            shape = tuple(y.shape)
            raise ConfigError(
                f"model {self.loaded.name!r} returned {shape} for an optical input of shape "
                f"{tuple(xo.shape)}; predict needs an output of the input's shape"
            )
        self.tiles_run += len(opt)
        return self._with_std(out).float().cpu().numpy()

    def _with_std(self, out: Any) -> torch.Tensor:
        """The prediction, with the standard deviation appended as more channels when asked."""
        if not self.with_std:
            return out.pred
        return torch.cat([out.pred, out.variance.clamp_min(0).sqrt()], dim=1)

    # -------------------------------------------------------------- main loop
    def execute(
        self,
        writer: RasterWriter,
        quick: QuicklookCollector | None,
        rgb: list[int],
        position: int,
        on_tile: Callable[[int], None] | None,
        sar_path: Path | None,
    ) -> Any:
        from tqdm.auto import tqdm

        g = self.grid
        n_acc = self.n_out * (2 if self.with_std else 1)
        acc = RowAccumulator(n_acc, g.width, g.tile_h, _BLOCK, g.height)
        rows = g.row_starts
        done = 0
        bar = tqdm(
            total=len(g),
            unit="tile",
            desc=self.info.path.name,
            disable=not self.opts.progress,
            position=position,
            leave=position == 0,
            dynamic_ncols=True,
        )
        try:
            for k, (row, cols) in enumerate(g.row_bands()):
                for b in range(0, len(cols), self.opts.batch_size):
                    chunk = cols[b : b + self.opts.batch_size]
                    tiles = [self._tile(row, c) for c in chunk]
                    run = [i for i, t in enumerate(tiles) if (t[2] == 3).any()]
                    preds: dict[int, np.ndarray] = {}
                    if run:
                        y = self._run_batch([tiles[i][0] for i in run], [tiles[i][1] for i in run])
                        preds = {i: y[j] for j, i in enumerate(run)}
                    for i, c in enumerate(chunk):
                        pred = preds.get(i)
                        if pred is None:  # nothing to predict: the values are never used
                            pred = np.zeros((n_acc, g.tile_h, g.tile_w), dtype=np.float32)
                        acc.add(pred, self.weights, tiles[i][2], row, c)
                    done += len(chunk)
                    bar.update(len(chunk))
                    if on_tile is not None:
                        on_tile(done)
                nxt = rows[k + 1] if k + 1 < len(rows) else None
                while (n := acc.ready(nxt)) > 0:
                    self._flush(writer, acc, n, quick, rgb)
                    acc.release(n)
        finally:
            bar.close()
        if self.n_opt == 0:
            raise InputFileError(self.info.path, "has no valid pixel (everything is nodata)")
        if sar_path is None:
            if self.n_written == 0:
                raise InputFileError(self.info.path, "has no pixel the model could predict")
            return quick.render() if quick is not None else None
        if self.n_sar == 0:
            raise InputFileError(
                sar_path,
                "has no valid Sentinel-1 value on the optical grid (the footprints do not "
                "overlap, or S1 is all nodata there)",
            )
        if self.n_written == 0:
            raise InputFileError(sar_path, "has no valid pixel in common with the optical scene")
        return quick.render() if quick is not None else None

    def _flush(
        self,
        writer: RasterWriter,
        acc: RowAccumulator,
        n: int,
        quick: QuicklookCollector | None,
        rgb: list[int],
    ) -> None:
        """Write the first ``n`` finished rows of ``acc``, in pieces of ``_FLUSH_COLS`` columns
        (block-aligned windows; temporaries stay small whatever the scene width)."""
        row, width = acc.top, acc.width
        rep_rows = self.replace.rows(row, n, width) if self.replace is not None else None
        for c0 in range(0, width, _FLUSH_COLS):
            c1 = min(width, c0 + _FLUSH_COLS)
            self._flush_piece(writer, acc, row, n, c0, c1, rep_rows, quick, rgb)

    def _flush_piece(
        self,
        writer: RasterWriter,
        acc: RowAccumulator,
        row: int,
        n: int,
        c0: int,
        c1: int,
        rep_rows: np.ndarray | None,
        quick: QuicklookCollector | None,
        rgb: list[int],
    ) -> None:
        flags = acc.flags_of(n, c0, c1)
        opt_ok = (flags & _OPT_VALID) > 0
        sar_ok = (flags & _SAR_VALID) > 0
        blended = acc.blended(n, c0, c1)
        dn = denormalize_optical(blended[: self.n_out], self.loaded.protocol)
        predicted = opt_ok & sar_ok & np.isfinite(dn).all(axis=0)
        self.n_opt += int(opt_ok.sum())
        self.n_sar += int(sar_ok.sum())
        self.n_both += int((opt_ok & sar_ok).sum())
        keep = np.zeros_like(opt_ok)
        inp: np.ndarray | None = None
        window = Window(c0, row, c1 - c0, n)
        if rep_rows is not None or quick is not None:
            inp = self._read_optical(window)
            if self.opts.pb04_offset:
                inp = harmonize_pb04(inp)
        if rep_rows is not None:
            rep = rep_rows[:, c0:c1]
            predicted &= rep
            # clear pixels, and flagged pixels that could not be predicted (no S1): input kept
            keep = opt_ok & ~predicted
            self.n_replaced += int(predicted.sum())
            self.n_kept_unpredicted += int((keep & rep).sum())
        written = predicted | keep
        self.n_written += int(written.sum())

        if self.opts.dtype == "uint16":
            np.nan_to_num(dn, copy=False)
            np.round(dn, out=dn)
            np.clip(dn, 1, 10000, out=dn)
            out = dn.astype(np.uint16)
            out[:, ~predicted] = 0
            if inp is not None and keep.any():
                out[:, keep] = np.clip(np.round(inp[:, keep]), 0, 65535).astype(np.uint16)
            after = out.astype(np.float32) if quick is not None else None
        else:
            out = dn
            out /= np.float32(10000.0)
            out[:, ~predicted] = np.nan
            if inp is not None and keep.any():
                out[:, keep] = inp[:, keep] / np.float32(10000.0)
            after = out * np.float32(10000.0) if quick is not None else None
        writer.write(out, window)
        if self.std_writer is not None:
            std = blended[self.n_out :] * self.std_factor
            std[:, ~predicted] = np.nan
            self.std_writer.write(std.astype(np.float32, copy=False), window)
        if quick is not None and inp is not None and after is not None:
            before = inp[rgb].astype(np.float32)
            before[:, ~opt_ok] = np.nan
            after = after[rgb]
            after[:, ~written] = np.nan
            quick.add(row, c0, before, after)
