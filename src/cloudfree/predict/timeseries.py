"""Cloud removal from a time series of one area: :func:`predict_time_series`.

Given several dated Sentinel-2 acquisitions with their Sentinel-1 images, write one cloud-free
image of the **target date** on that date's S2 grid, with a temporal network or, without any
trained model, a temporal composite (``least_cloudy``, ``mosaic``, ``most_recent_clear``:
:mod:`cloudfree.models.composites`).

Decisions:

* **Inputs** are pairs (S2, S1) per date, in the order given (``--optical`` / ``--sar`` lists of
  equal length, or a CSV with columns ``date, optical, sar[, mask]``), or S2 alone on every
  date (no ``--sar``; a CSV without a ``sar`` column or with all its cells empty) for a
  predictor that uses no SAR: a temporal network whose spec says ``needs_sar=False`` (e.g.
  ``utae_cr`` / ``uncrtaints`` built with ``in_sar=0``) or a composite. S1 on some dates only
  is an error (a series has S1 on every date or on none); a network that needs SAR without
  any is an error naming it. Without S1 nothing of it is opened or warped, the network gets
  ``sar=None`` and the tags say ``SOURCE_SAR=none``. S1 given to a predictor that does not
  use it is still opened, checked and warped (a network: its validity limits the output, as
  in :func:`cloudfree.predict.predict_scene`; a composite: its values are never read).
  A date comes from the CSV, else from the S2 file's tags (``DATE``, ``ACQUISITION_DATE``,
  ``DATATAKE_1_DATATAKE_SENSING_START`` or ``TIFFTAG_DATETIME``), else from its name
  (``2018-06-01``, ``20180601`` as in ``..._20180601T103021_...``, ``2018_06_01``); a file
  without any is an error naming it.
  Two acquisitions of one date are an error; dates given out of order are sorted (the note
  says so). S1/S2 lists of different lengths are an error.
* **Target date**: ``target_date`` must be one of the S2 dates (default: the latest); its S2 file
  defines the output grid (CRS, transform, size). Every other date's S2, and every S1, is warped
  onto it window by window (bilinear, :func:`cloudfree.predict.align.warp_onto_grid`); a date
  whose footprint does not overlap it is an error naming the file.
* **Networks** get ``optical [B, T, C, h, w]`` and ``sar [B, T, 2, h, w]`` normalised with their
  protocol date by date, ``dates`` in days since 2014-04-03 (the S2 dates) and an all-True
  ``time_mask``; the network's ``max_dates`` is checked. Tiles, blending, nodata handling,
  output types, tags, ``--keep-clear`` (on the target date) and atomic writes are those of
  :func:`cloudfree.predict.predict_scene`.
* **Composites** need a per-date "not clear" mask: the CSV's ``mask`` column (a GeoTIFF per
  date, non-zero = not clear, warped nearest onto the target grid) or, by default, the
  rule-based **cloud** class of each date computed on the whole date (warped onto the target
  grid; the detector is image-relative, so this holds one 13-band date in memory at a time)
  and dilated by 2 px; with ``replace_shadow`` its shadow class too. Composites run in the
  ``uncrtaints`` scaling (DN / 10000), output DN. Pixels no date saw clear get the least cloudy
  date's value; their fraction is reported (``PredictResult.tags["NO_CLEAR_FRACTION"]``).
* A pixel is predicted where at least one date has valid optical and SAR values (composites,
  and networks without S1: valid optical); elsewhere the output is nodata.
* A composite also writes ``<out stem>_no_clear.tif`` (uint8, 1 where no date was clear), under
  the same overwrite rules as the output.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from cloudfree.bands import S2_L1C, BandSet
from cloudfree.errors import ConfigError, InputFileError
from cloudfree.io import RasterInfo, open_raster, raster_info, write_raster
from cloudfree.io.bandmap import BandMap, map_bands, parse_band_fills
from cloudfree.io.geotiff import describe_read_error, raster_files
from cloudfree.io.outputs import check_output
from cloudfree.models.api import ModelBatch, run_model, spec_of
from cloudfree.models.composites import COMPOSITES
from cloudfree.normalization import normalize_optical, normalize_sar
from cloudfree.predict.align import SAR_BANDS, SarOnGrid, warp_onto_grid
from cloudfree.predict.inputs import check_optical_file, optical_factor, resolve_optical_nodata
from cloudfree.predict.scene import (
    _OPT_VALID,
    _SAR_VALID,
    PredictOptions,
    PredictResult,
    _dilate,
    _gdal_env,
    _has_variance,
    _rule_based_mask,
    _SceneRun,
    _tags,
    check_sar_given,
    optional_std_writer,
    output_writer,
    std_output_path,
)
from cloudfree.predict.tiling import TileGrid
from cloudfree.predict.weights import LoadedModel

__all__ = [
    "DatedInput",
    "no_clear_path",
    "CompositePredictor",
    "acquisition_date",
    "dated_inputs",
    "predict_time_series",
    "read_series_csv",
]

_EPOCH = dt.date(2014, 4, 3)
_DATE_TAGS = ("DATE", "ACQUISITION_DATE", "DATATAKE_1_DATATAKE_SENSING_START", "TIFFTAG_DATETIME")
_NAME_DATES = (
    re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)"),
    re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?:T\d{6})?(?!\d)"),
    re.compile(r"(?<!\d)(\d{4})_(\d{2})_(\d{2})(?!\d)"),
)


@dataclass(frozen=True)
class DatedInput:
    """One acquisition of the series."""

    date: dt.date
    optical: Path
    #: None: no S1 for this date (predictors that use no SAR; all dates or none)
    sar: Path | None
    mask: Path | None = None


@dataclass
class CompositePredictor:
    """A temporal composite used like a network by :func:`predict_time_series`."""

    name: str
    protocol: str = "uncrtaints"
    bands: BandSet = S2_L1C
    weights_path: Path = Path("none")
    weights_sha256: str = "none (no weights)"
    source: str = "composite"
    device: torch.device = torch.device("cpu")

    def __post_init__(self) -> None:
        if self.name not in COMPOSITES:
            raise ConfigError(
                f"unknown composite {self.name!r}; composites: {', '.join(COMPOSITES)}"
            )


def _parse_date(text: str) -> dt.date | None:
    for pattern in _NAME_DATES:
        m = pattern.search(text)
        if m:
            try:
                return dt.date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                continue
    return None


def acquisition_date(path: str | os.PathLike[str]) -> dt.date | None:
    """The acquisition date of a raster: its tags, else its file name (module docstring)."""
    p = Path(path)
    try:
        tags = raster_info(p).tags
    except InputFileError:
        tags = {}
    for key in _DATE_TAGS:
        value = tags.get(key)
        if value:
            d = _parse_date(str(value).replace(":", "-", 2) if key == "TIFFTAG_DATETIME" else value)
            if d is not None:
                return d
    return _parse_date(p.name)


def dated_inputs(
    optical: Sequence[str | os.PathLike[str]],
    sar: Sequence[str | os.PathLike[str]],
    dates: Sequence[str | dt.date] | None = None,
    masks: Sequence[str | os.PathLike[str] | None] | None = None,
) -> tuple[list[DatedInput], str | None]:
    """The series in time order, and a note when it had to be sorted (module docstring).

    ``sar`` holds one S1 file per optical file (same order), or nothing at all (no S1 on any
    date; only predictors that use no SAR accept such a series)."""
    if sar and len(optical) != len(sar):
        raise ConfigError(
            f"{len(optical)} optical file(s) but {len(sar)} SAR file(s): give one S1 image per "
            "S2 date, in the same order"
        )
    if len(optical) < 1:
        raise ConfigError("a time series needs at least one date")
    if dates is not None and len(dates) != len(optical):
        raise ConfigError(f"{len(dates)} date(s) for {len(optical)} optical file(s)")
    items = []
    sars: Sequence[str | os.PathLike[str] | None] = sar if sar else [None] * len(optical)
    for k, (o, s) in enumerate(zip(optical, sars)):
        if dates is not None:
            d = dates[k]
            if isinstance(d, str):
                parsed = _parse_date(d)
                if parsed is None:
                    raise ConfigError(f"date {d!r} of {o} is not YYYY-MM-DD")
                d = parsed
        else:
            d = acquisition_date(o)
            if d is None:
                raise InputFileError(
                    o,
                    "has no acquisition date in its tags (DATE) or its name (YYYY-MM-DD, "
                    "YYYYMMDD); list the series in a CSV with a date column (--series)",
                )
        mask = None if masks is None or masks[k] in (None, "") else Path(masks[k])  # type: ignore[arg-type]
        items.append(DatedInput(d, Path(o), Path(s) if s not in (None, "") else None, mask))
    _check_sar_on_all_or_none(items)
    seen: dict[dt.date, Path] = {}
    for it in items:
        if it.date in seen:
            raise InputFileError(
                it.optical, f"has the date {it.date} of {seen[it.date].name} too; one S2 per date"
            )
        seen[it.date] = it.optical
    ordered = sorted(items, key=lambda it: it.date)
    note = None
    if ordered != items:
        note = "the dates were not in time order; they were sorted: " + ", ".join(
            str(it.date) for it in ordered
        )
    return ordered, note


def _check_sar_on_all_or_none(items: Sequence[DatedInput]) -> None:
    without = [it for it in items if it.sar is None]
    if without and len(without) != len(items):
        raise ConfigError(
            f"{len(without)} of {len(items)} dates have no SAR file (e.g. "
            f"{without[0].optical.name}); give S1 on every date or on none"
        )


def read_series_csv(path: str | os.PathLike[str]) -> tuple[list[DatedInput], str | None]:
    """A series from a CSV with columns ``date, optical[, sar][, mask]`` (paths relative to the
    CSV's folder; ``sar`` absent or empty on every row: no S1, module docstring)."""
    p = Path(path)
    try:
        with open(p, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputFileError(p, f"is not a readable CSV ({exc})") from None
    need = {"date", "optical"}
    if not rows or not need <= set(rows[0]):
        raise InputFileError(
            p,
            "needs a header row with the columns date, optical, sar[, mask] (sar may be left "
            "out for a predictor that uses no SAR)",
        )

    def rel(v: str) -> Path:
        q = Path(v.strip())
        return q if q.is_absolute() else p.parent / q

    return dated_inputs(
        [rel(r["optical"]) for r in rows],
        [rel(r["sar"]) if (r.get("sar") or "").strip() else None for r in rows],
        [r["date"].strip() for r in rows],
        [rel(r["mask"]) if r.get("mask", "").strip() else None for r in rows],
    )


class _OpticalOnGrid:
    """One date's S2 bands on the target grid, read window by window (DN, NaN = invalid)."""

    def __init__(
        self,
        path: Path,
        grid: RasterInfo,
        bands: BandSet,
        opts: PredictOptions,
    ) -> None:
        self.path = path
        self.info = raster_info(path)
        self.bandmap: BandMap = map_bands(
            self.info, bands.names, opts.file_bands, parse_band_fills(opts.fill_bands)
        )
        self.nodata = resolve_optical_nodata(self.info, opts.optical_nodata)
        self.factor = np.float32(optical_factor(opts.optical_scale))
        self.src = open_raster(path)
        try:
            check_optical_file(self.src, self.info, self.bandmap, self.nodata, opts.optical_scale)
            self.vrt = warp_onto_grid(
                self.src, path, grid, Resampling.bilinear, self.nodata, "this date's Sentinel-2"
            )
        except BaseException:
            self.src.close()
            raise

    def read(self, window: Window) -> np.ndarray:
        idx = [p + 1 for p in self.bandmap.file_positions]
        reader = self.src if self.vrt is None else self.vrt
        try:
            arr = reader.read(idx, window=window).astype(np.float32, copy=False)
        except RasterioError as exc:
            raise InputFileError(self.path, describe_read_error(exc, self.path)) from None
        if self.vrt is None and self.nodata is not None and not np.isnan(self.nodata):
            arr[:, (arr == np.float32(self.nodata)).any(axis=0)] = np.nan
        if self.factor != 1:
            arr *= self.factor
        return self.bandmap.assemble(arr)

    def close(self) -> None:
        if self.vrt is not None:
            self.vrt.close()
        self.src.close()


def _not_clear_mask(
    reader: _OpticalOnGrid, item: DatedInput, grid: RasterInfo, opts: PredictOptions
) -> np.ndarray:
    """bool [H, W] on the target grid: where this date is not clear (module docstring)."""
    if item.mask is not None:
        src = open_raster(item.mask)
        try:
            vrt = warp_onto_grid(src, item.mask, grid, Resampling.nearest, src.nodata, "mask")
            try:
                m = (vrt or src).read(1).astype(np.float32)
            except RasterioError as exc:
                raise InputFileError(item.mask, describe_read_error(exc, item.mask)) from None
            if vrt is not None:
                vrt.close()
        finally:
            src.close()
        return (m != 0) | np.isnan(m)
    from cloudfree.cloudmask import compute_cloud_mask

    if reader.bandmap.names != S2_L1C.names:
        raise ConfigError("the rule-based mask of a composite needs the 13 L1C bands")
    dn = reader.read(Window(0, 0, grid.width, grid.height))
    if opts.pb04_offset:
        from cloudfree.bands import harmonize_pb04

        dn = harmonize_pb04(dn)
    valid = np.isfinite(dn).all(axis=0)
    labels = compute_cloud_mask(np.nan_to_num(dn), "rule_based", valid=valid)
    del dn
    flagged = labels != 0 if opts.replace_shadow else labels == 1
    return _dilate(flagged, 2)


class _SeriesRun(_SceneRun):
    """The tile loop of :func:`predict_scene` on a time series: a tile is ``[T, C, h, w]``;
    for a composite the second array holds the dates' not-clear flags ``[T, 1, h, w]``
    instead of SAR; without S1 (``sars`` empty) a network's second array is None."""

    def __init__(
        self,
        predictor: Any,
        opts: PredictOptions,
        info: RasterInfo,
        target_src: Any,
        target_bandmap: BandMap,
        readers: list[_OpticalOnGrid],
        sars: list[SarOnGrid],
        days: np.ndarray,
        not_clear: list[np.ndarray] | None,
        nodata: float | None,
        grid: TileGrid,
        replace: Any,
    ) -> None:
        first = sars[0] if sars else None
        super().__init__(
            predictor, opts, info, target_src, first, target_bandmap, nodata, grid, replace
        )
        self.readers, self.sars, self.days, self.not_clear = readers, sars, days, not_clear

    def _tile(self, row: int, col: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        g, p = self.grid, self.loaded.protocol
        window = Window(col, row, g.tile_w, g.tile_h)
        optical, second, opt_ok, ok = [], [], None, None
        for k, reader in enumerate(self.readers):
            o, ov = normalize_optical(reader.read(window), p, pb04_offset=self.opts.pb04_offset)
            optical.append(o)
            opt_ok = ov if opt_ok is None else opt_ok | ov
            if self.not_clear is not None:
                flags = self.not_clear[k][row : row + g.tile_h, col : col + g.tile_w]
                second.append(flags[None].astype(np.float32))
            elif self.sars:
                sv_arr, sv = normalize_sar(self.sars[k].read(window), p, bands=SAR_BANDS)
                second.append(sv_arr)
                ok = ov & sv if ok is None else ok | (ov & sv)
        assert opt_ok is not None
        if ok is None:  # a composite, or a network without S1: valid optical suffices
            ok = opt_ok
        flags = opt_ok.astype(np.uint8) * _OPT_VALID + ok.astype(np.uint8) * _SAR_VALID
        return np.stack(optical), (np.stack(second) if second else None), flags

    def _run_batch(self, opt: list[np.ndarray], sar: list[np.ndarray | None]) -> np.ndarray:
        xo = torch.from_numpy(np.stack(opt))
        n, t = xo.shape[:2]
        dates = torch.from_numpy(self.days)[None].expand(n, t)
        if self.not_clear is not None:
            cloudy = torch.from_numpy(np.stack(sar)) > 0.5
            fn = COMPOSITES[self.loaded.name]
            if self.loaded.name == "most_recent_clear":
                pred, no_clear = fn(xo, cloudy, None, dates)
            else:
                pred, no_clear = fn(xo, cloudy, None)
            self.tiles_run += n
            return pred.float().numpy()
        dev = self.loaded.device
        xs = None
        if sar[0] is not None:
            xs = torch.from_numpy(np.stack(sar)).to(dev)  # type: ignore[arg-type]
        batch = ModelBatch(
            xo.to(dev),
            xs,
            dates.to(dev),
            torch.ones(n, t, dtype=torch.bool, device=dev),
        )
        with torch.inference_mode():
            out = run_model(self.loaded.model, batch)
        self.tiles_run += n
        return self._with_std(out).float().cpu().numpy()


def no_clear_path(out: Path) -> Path:
    """The composite's sidecar mask: ``<out stem>_no_clear.tif`` next to ``out``."""
    return out.with_name(f"{out.stem}_no_clear.tif")


def _series_inputs(items: Sequence[DatedInput], loaded: Any, out: Path) -> list[Path]:
    files: list[Path] = []
    for it in items:
        files += raster_files(it.optical)
        if it.sar is not None:
            files += raster_files(it.sar)
        if it.mask is not None:
            files.append(it.mask)
    weights = Path(loaded.weights_path)
    if weights.exists():
        files += [weights, *(f for f in weights.iterdir() if weights.is_dir() and f.is_file())]
    return files


def predict_time_series(
    loaded: LoadedModel | CompositePredictor,
    series: Sequence[DatedInput],
    out: str | os.PathLike[str],
    options: PredictOptions | None = None,
    *,
    target_date: dt.date | str | None = None,
) -> PredictResult:
    """Remove clouds from the target date of ``series`` (module docstring); write ``out`` on
    its grid. ``loaded`` is a temporal network (:func:`cloudfree.predict.load_model` with
    ``temporal=True``) or a :class:`CompositePredictor`. Without S1 on the dates
    (``DatedInput.sar`` None) only a predictor that uses no SAR runs (module docstring)."""
    opts = options or PredictOptions()
    opts.validate()
    t0 = time.perf_counter()
    out = Path(out)
    items = sorted(series, key=lambda it: it.date)
    if not items:
        raise ConfigError("a time series needs at least one date")
    if isinstance(target_date, str):
        parsed = _parse_date(target_date)
        if parsed is None:
            raise ConfigError(f"--target-date {target_date!r} is not YYYY-MM-DD")
        target_date = parsed
    target_date = target_date or items[-1].date
    targets = [it for it in items if it.date == target_date]
    if not targets:
        raise ConfigError(
            f"target date {target_date} is none of the S2 dates "
            f"({', '.join(str(it.date) for it in items)})"
        )
    composite = isinstance(loaded, CompositePredictor)
    _check_sar_on_all_or_none(items)
    with_sar = items[0].sar is not None
    if not with_sar:
        check_sar_given(loaded, None, "one --sar per --optical (or a sar column in --series)")
    if not composite:
        spec = spec_of(loaded.model).inputs  # type: ignore[union-attr]
        if spec.max_dates is not None and len(items) > spec.max_dates:
            raise ConfigError(
                f"model {loaded.name!r} takes at most {spec.max_dates} dates, got {len(items)}"
            )
    target = targets[0]
    inputs = _series_inputs(items, loaded, out)
    check_output(out, inputs=inputs, overwrite=opts.overwrite)
    sidecar = no_clear_path(out) if composite else None
    if sidecar is not None:
        check_output(sidecar, inputs=inputs, overwrite=opts.overwrite, what="no-clear mask")
    std_path = std_output_path(out, opts) if opts.write_std and _has_variance(loaded) else None
    if std_path is not None:
        check_output(std_path, inputs=inputs, overwrite=opts.overwrite, what="standard deviation")
    info = raster_info(target.optical)
    nodata = resolve_optical_nodata(info, opts.optical_nodata)
    target_bandmap = map_bands(
        info, loaded.bands.names, opts.file_bands, parse_band_fills(opts.fill_bands)
    )
    grid = TileGrid(info.height, info.width, opts.tile_size, opts.overlap)
    days = np.array([(it.date - _EPOCH).days for it in items], dtype=np.float32)
    readers: list[_OpticalOnGrid] = []
    sars: list[SarOnGrid] = []
    replace = None
    with _gdal_env(opts.gdal_cache_mb):
        target_src = open_raster(target.optical)
        try:
            for it in items:
                readers.append(_OpticalOnGrid(it.optical, info, loaded.bands, opts))
                if it.sar is None:
                    continue
                s1 = SarOnGrid(
                    it.sar, info, units=opts.sar_units, nodata=opts.sar_nodata, bands=opts.sar_bands
                )
                s1.open()
                sars.append(s1)
            not_clear = None
            if composite:
                not_clear = [_not_clear_mask(r, it, info, opts) for r, it in zip(readers, items)]
            if opts.keep_clear:
                dil = 2 if opts.mask_dilation is None else opts.mask_dilation
                replace = _rule_based_mask(target_src, info, opts, nodata, dil)
            tags = _tags(
                loaded, opts, target.optical, target.sar, sars[0] if sars else None, nodata,
                replace, target_bandmap,
            )  # type: ignore[arg-type]  # fmt: skip
            tags.update(
                {
                    "TARGET_DATE": str(target.date),
                    "DATES_USED": ",".join(str(it.date) for it in items),
                    "SOURCE_OPTICAL": ",".join(it.optical.name for it in items),
                    "SOURCE_SAR": (
                        ",".join(it.sar.name for it in items if it.sar is not None) or "none"
                    ),
                }
            )
            no_clear = None
            if composite:
                tags["METHOD"] = f"temporal composite {loaded.name} (no network)"
                no_clear = np.logical_and.reduce(not_clear) if not_clear else None
                if no_clear is not None:
                    tags["NO_CLEAR_FRACTION"] = f"{float(no_clear.mean()):.4f}"
                    tags["NO_CLEAR_MASK"] = sidecar.name  # type: ignore[union-attr]
            run = _SeriesRun(
                loaded, opts, info, target_src, target_bandmap, readers, sars, days,
                not_clear, nodata, grid, replace,
            )  # fmt: skip
            with (
                output_writer(out, loaded.bands, info, opts, tags) as writer,
                optional_std_writer(std_path, loaded.bands, info, opts, tags, out) as std_w,
            ):
                run.std_writer = std_w
                run.execute(writer, None, [], 0, None, target.sar)
            if no_clear is not None and sidecar is not None:
                write_raster(
                    sidecar,
                    no_clear.astype(np.uint8),
                    crs=info.crs,
                    transform=info.transform,
                    descriptions=["no_clear"],
                    tags={
                        "MEANING": "1 = no date was clear here (least cloudy date's value)",
                        "SOURCE": out.name,
                    },  # fmt: skip
                    dtype="uint8",
                )
        finally:
            target_src.close()
            for r in readers:
                r.close()
            for s1 in sars:
                s1.close()
            if replace is not None:
                replace.close()
    return run.result(out, len(grid), time.perf_counter() - t0, tags, std_path)
