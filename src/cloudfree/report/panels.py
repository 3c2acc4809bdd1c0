"""Image panels of a report: test patches (cloudy, SAR, predictions, target, mask) and scenes.

Decisions:

* **Stretch.** RGB is B04, B03, B02. Per band, the 2nd and 98th percentiles of the **targets**
  (the cloud-free references) map to 0 and 255, and every RGB panel uses that one stretch, so
  the panels are directly comparable and clouds saturate to white instead of darkening the
  ground (as the predict quicklook does). For test patches the percentiles are pooled over all
  the patches shown (a single patch can have too little spread for a stable stretch); for a
  scene they are the reference image's.
* **SAR** is shown in dB as red VV, green and blue VH (:func:`sar_composite`), stretched to
  the 1-99 % range of the channel.
* **Cloud mask**: clear dark grey, cloud white, cloud shadow blue (:data:`MASK_COLOURS`).
* **Uncertainty** (models with a variance output: a sample's ``uncertainty`` maps, the
  predicted standard deviation averaged over the bands, in reflectance): a column after the
  model's prediction, in the colour map :data:`UNCERTAINTY_CMAP` from 0 (certain, black) to the
  99th percentile of every map shown (:func:`uncertainty_range`, one scale for all patches and
  models so that they compare; larger values saturate). The range is stated in the manifest
  and drawn as a colour bar (:data:`UNCERTAINTY_COLOURBAR`).
* **Time series** (samples with ``input_dates``, :func:`cloudfree.evaluate.predict_samples`
  of a time-series dataset): one small panel per real input date comes first (columns
  ``input_1`` ... ``input_T``, in the order the model sees the series, each captioned with its
  date when known; a series with fewer dates than the longest leaves its last cells empty),
  in the one RGB stretch, at half the width of the other panels on the page (their PNGs
  enlarged to :data:`INPUT_DATE_SCALE` x the minimum side);
  the cloudy column (and the SAR) is then the last real input date, the image the identity
  baseline copies and a mono-temporal model restores.
* **Small patches** are enlarged by an integer factor with nearest-neighbour sampling (crisp
  pixels) so that they are at least :data:`PANEL_MIN_SIDE` pixels wide.
* **Which patches**: :func:`select_by_cover` takes evenly spaced ranks of the cloud-cover
  order, so the panels run from the clearest to the cloudiest test patch.
* **Files**: one PNG per panel, written atomically (:func:`cloudfree.io.png.save_png`), listed
  with paths relative to the panel directory in ``panels.json`` (:data:`PANELS_JSON`), which is
  what :func:`cloudfree.report.build_report` reads.
* **No model here.** :func:`render_sample_panels` draws given samples and predictions
  (reflectance arrays, computed by :func:`cloudfree.evaluate.predict_samples`, which also
  measures the caption metrics on the metric protocol's centre crop, the crop of the metrics
  table); ``cloudfree report --panels N`` runs the models in the command-line layer.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.errors import ConfigError, InputFileError
from cloudfree.io.atomic import atomic_write_json
from cloudfree.io.png import save_png

__all__ = [
    "INPUT_DATE_SCALE",
    "MASK_COLOURS",
    "PANELS_DIR",
    "PANELS_JSON",
    "PANEL_MIN_SIDE",
    "RGB_BANDS",
    "UNCERTAINTY_CMAP",
    "UNCERTAINTY_COLOURBAR",
    "apply_stretch",
    "colour_bar",
    "enlarge",
    "mask_image",
    "percentile_stretch",
    "render_sample_panels",
    "render_scene_images",
    "rgb_image",
    "sar_composite",
    "sar_image",
    "select_by_cover",
    "uncertainty_image",
    "uncertainty_range",
]

#: Bands of the true-colour composite (red, green, blue).
RGB_BANDS: tuple[str, str, str] = ("B04", "B03", "B02")
#: Colours of the cloud-mask panel (RGB): clear, cloud, shadow.
MASK_COLOURS: dict[str, tuple[int, int, int]] = {
    "clear": (40, 44, 52),
    "cloud": (245, 245, 245),
    "shadow": (59, 130, 246),
}
#: Patches narrower than this are enlarged (integer factor, nearest neighbour).
PANEL_MIN_SIDE = 192
#: The input-date panels of a time series are this fraction of the other panels' size.
INPUT_DATE_SCALE = 0.5
#: Sub-directory of a report directory holding the sample panels, and its manifest.
PANELS_DIR = "panels"
PANELS_JSON = "panels.json"
#: Matplotlib colour map of the uncertainty panels, and the file of its colour bar.
UNCERTAINTY_CMAP = "magma"
UNCERTAINTY_COLOURBAR = "uncertainty_colourbar.png"


# ------------------------------------------------------------------------------ rendering
def percentile_stretch(
    reference: np.ndarray, lo: float = 2.0, hi: float = 98.0
) -> list[tuple[float, float]]:
    """Per-band ``(low, high)`` percentiles of ``reference`` ``[C, H, W]`` (finite values only);
    a band without finite values or without spread gets a unit range."""
    out: list[tuple[float, float]] = []
    for band in np.asarray(reference, dtype=np.float64):
        vals = band[np.isfinite(band)]
        if vals.size == 0:
            out.append((0.0, 1.0))
            continue
        a, b = (float(v) for v in np.percentile(vals, [lo, hi]))
        out.append((a, b if b > a else a + 1e-6 + abs(a) * 1e-6))
    return out


def apply_stretch(image: np.ndarray, stretch: Sequence[tuple[float, float]]) -> np.ndarray:
    """``[C, H, W]`` float -> ``uint8 [H, W, C]`` with ``stretch[c]`` mapped to 0..255
    (clipped); non-finite pixels are black."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 3 or img.shape[0] != len(stretch):
        raise ConfigError(f"expected {len(stretch)} bands [C, H, W], got shape {img.shape}")
    out = np.zeros(img.shape[1:] + (img.shape[0],), dtype=np.uint8)
    for c, (a, b) in enumerate(stretch):
        band = img[c]
        scaled = np.clip((band - a) / (b - a), 0.0, 1.0) * 255.0
        out[..., c] = np.round(np.where(np.isfinite(band), scaled, 0.0)).astype(np.uint8)
    return out


def _rgb_positions(band_names: Sequence[str]) -> list[int]:
    names = list(band_names)
    missing = [b for b in RGB_BANDS if b not in names]
    if missing:
        raise ConfigError(f"an RGB panel needs bands {','.join(RGB_BANDS)}; missing {missing}")
    return [names.index(b) for b in RGB_BANDS]


def rgb_image(
    optical: np.ndarray,
    band_names: Sequence[str],
    stretch: Sequence[tuple[float, float]] | None = None,
) -> np.ndarray:
    """True-colour ``uint8 [H, W, 3]`` of ``optical`` ``[C, H, W]`` (any linear unit); the
    stretch defaults to the image's own 2-98 % percentiles."""
    rgb = np.asarray(optical)[_rgb_positions(band_names)]
    return apply_stretch(rgb, stretch if stretch is not None else percentile_stretch(rgb))


def sar_composite(sar_db: np.ndarray) -> np.ndarray:
    """``[3, H, W]`` float of S1 ``[2, H, W]`` (VV, VH in dB): VV, VH, VH (red VV, green and
    blue VH: bright where both scatter, red where VV dominates, e.g. towns)."""
    s = np.asarray(sar_db, dtype=np.float64)
    if s.ndim != 3 or s.shape[0] != 2:
        raise ConfigError(f"expected SAR [2, H, W] (VV, VH), got shape {s.shape}")
    return np.stack([s[0], s[1], s[1]])


def sar_image(
    sar_db: np.ndarray, stretch: Sequence[tuple[float, float]] | None = None
) -> np.ndarray:
    """False colour ``uint8 [H, W, 3]`` of S1 ``[2, H, W]`` (:func:`sar_composite`); the stretch
    defaults to the image's own 1-99 % percentiles per channel."""
    composite = sar_composite(sar_db)
    return apply_stretch(composite, stretch or percentile_stretch(composite, 1.0, 99.0))


def mask_image(cloud: np.ndarray, shadow: np.ndarray | None = None) -> np.ndarray:
    """``uint8 [H, W, 3]`` of a cloud mask (and shadow mask), colours :data:`MASK_COLOURS`."""
    c = np.asarray(cloud).astype(bool)
    out = np.empty(c.shape + (3,), dtype=np.uint8)
    out[:] = MASK_COLOURS["clear"]
    if shadow is not None:
        out[np.asarray(shadow).astype(bool) & ~c] = MASK_COLOURS["shadow"]
    out[c] = MASK_COLOURS["cloud"]
    return out


def _lut(cmap: str) -> np.ndarray:
    """``uint8 [256, 3]`` colours of a matplotlib colour map."""
    import matplotlib

    try:
        colours = matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3]
    except KeyError:
        raise ConfigError(f"unknown matplotlib colour map {cmap!r}") from None
    return np.round(colours * 255.0).astype(np.uint8)


def uncertainty_range(maps: Sequence[np.ndarray], percentile: float = 99.0) -> tuple[float, float]:
    """``(0, top)`` of the uncertainty colour scale: ``top`` is the ``percentile`` of the
    finite values of every map (the maximum when that is 0; 1 when there is none)."""
    finite = [np.asarray(m, dtype=np.float64) for m in maps]
    vals = np.concatenate([m[np.isfinite(m)].ravel() for m in finite]) if finite else np.empty(0)
    if vals.size == 0:
        return 0.0, 1.0
    top = float(np.percentile(vals, percentile))
    if top <= 0:
        top = float(vals.max())
    return 0.0, top if top > 0 else 1.0


def uncertainty_image(std: np.ndarray, top: float, cmap: str = UNCERTAINTY_CMAP) -> np.ndarray:
    """``uint8 [H, W, 3]`` of a standard-deviation map ``[H, W]``: 0 to ``top`` through the
    colour map (values above ``top`` saturate); non-finite pixels are black."""
    s = np.asarray(std, dtype=np.float64)
    if s.ndim != 2:
        raise ConfigError(f"an uncertainty map must be [H, W], got shape {s.shape}")
    if not top > 0:
        raise ConfigError(f"the top of the uncertainty scale must be > 0, got {top!r}")
    scaled = np.clip(np.where(np.isfinite(s), s, 0.0) / top, 0.0, 1.0)
    out = _lut(cmap)[np.round(scaled * 255.0).astype(np.int64)]
    out[~np.isfinite(s)] = 0
    return out


def colour_bar(cmap: str = UNCERTAINTY_CMAP, width: int = 256, height: int = 14) -> np.ndarray:
    """``uint8 [height, width, 3]`` horizontal colour bar, low values on the left."""
    lut = _lut(cmap)
    row = lut[np.round(np.linspace(0, 255, width)).astype(np.int64)]
    return np.repeat(row[None], height, axis=0)


def enlarge(image: np.ndarray, min_side: int = PANEL_MIN_SIDE) -> np.ndarray:
    """Nearest-neighbour enlargement of ``uint8 [H, W, 3]`` by the smallest integer factor that
    makes the width at least ``min_side`` (no change when it already is)."""
    factor = max(1, math.ceil(min_side / max(1, image.shape[1])))
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def select_by_cover(covers: Sequence[float], n: int) -> list[int]:
    """Indices of ``n`` samples at evenly spaced ranks of the cloud-cover order, lowest cover
    first (all samples, sorted by cover, when there are at most ``n``)."""
    if n < 1:
        return []
    c = np.asarray(covers, dtype=np.float64)
    order = np.argsort(c, kind="stable")
    if len(order) <= n:
        return [int(i) for i in order]
    ranks = np.unique(np.round(np.linspace(0, len(order) - 1, n)).astype(int))
    return [int(order[r]) for r in ranks]


# ---------------------------------------------------------------------------- test patches
def _plane(mask: Any) -> np.ndarray:
    """A mask as ``[H, W]`` (a leading singleton channel dropped)."""
    m = np.asarray(mask)
    return m[0] if m.ndim == 3 else m


def render_sample_panels(
    samples: Sequence[Mapping[str, Any]],
    predictions: Mapping[str, Sequence[Any]],
    out_dir: str | os.PathLike[str],
    *,
    band_names: Sequence[str],
    labels: Mapping[str, str] | None = None,
    metric_protocol: str = "uncrtaints",
    metrics_crop: int | None = None,
    min_side: int = PANEL_MIN_SIDE,
) -> dict[str, Any]:
    """Render the panels of some samples and their predictions and write them with
    ``panels.json``. Nothing here runs a model: the predictions are given
    (:func:`cloudfree.evaluate.predict_samples` makes all the inputs).

    Args:
        samples: per sample ``id``, ``cloud_cover``, ``optical`` and ``target``
            (reflectance ``[C, H, W]``), ``sar`` (dB ``[2, H, W]``), ``cloud_mask`` and
            optionally ``shadow_mask`` (``[H, W]`` or ``[1, H, W]``, nonzero = labelled),
            ``metrics`` (key -> ``{"psnr", "mae"}`` or None, the caption numbers; absent:
            no caption) and ``uncertainty`` (key of a model of ``predictions`` -> its
            predicted standard deviation ``[H, W]`` in reflectance, drawn as a column
            ``<key>_std`` after the prediction; see the module docstring); for a time series
            ``input_dates`` (reflectance ``[C, H, W]`` of every real input date, in series
            order) and optionally ``date_labels`` (one per input date, e.g. ``YYYY-MM-DD``,
            or None), drawn as the first columns.
        predictions: report key -> one reflectance ``[C, H, W]`` array per sample, in the
            bands of ``band_names``.
        out_dir: directory for the PNGs and ``panels.json`` (created).
        band_names: the optical bands of every image (must hold B04, B03, B02).
        labels: report key -> column title (default: the key).
        metric_protocol, metrics_crop: how the caption metrics were measured (recorded in the
            manifest, shown under the panels).
        min_side: enlarge panels narrower than this (nearest neighbour).

    Returns:
        The manifest written to ``out_dir/panels.json``: ``columns`` (``[{"key", "label"}]`` in
        display order: with time series first ``input_1`` ... ``input_T`` (these also carry
        ``"kind": "input_date"``), then cloudy, SAR, each model (followed by ``<key>_std``
        when it has uncertainty maps), target, mask), ``samples`` (``[{"id", "cloud_cover",
        "images": {key: file name}, "metrics": {name: {"psnr", "mae"}}}]``, metrics inside
        clouds, ``identity`` included; null where the patch has no cloud pixel; with
        uncertainty maps also ``"uncertainty": {key: mean std of the patch}``; with time
        series ``"input_dates": {input key: date label or null}``) and notes on the
        rendering (with uncertainty maps: ``uncertainty``, ``uncertainty_range`` ``[0, top]``
        and ``uncertainty_colourbar``, the colour bar's file; with time series
        ``input_dates``).

    Raises:
        ConfigError: no sample, no RGB bands, a prediction list of another length, an
            uncertainty map of a key without predictions or of another size, or input dates
            of another shape than the target or with another number of date labels.
    """
    out = Path(out_dir)
    labels = dict(labels or {})
    band_names = list(band_names)
    rgb = _rgb_positions(band_names)
    if not samples:
        raise ConfigError("no sample to render panels of")
    for key, preds in predictions.items():
        if len(preds) != len(samples):
            raise ConfigError(f"{len(preds)} prediction(s) of {key!r} for {len(samples)} sample(s)")
    with_std = [k for k in predictions if any(k in (s.get("uncertainty") or {}) for s in samples)]
    for s in samples:
        for key, std in (s.get("uncertainty") or {}).items():
            if key not in predictions:
                raise ConfigError(
                    f"sample {s['id']!r} has an uncertainty map of {key!r}, "
                    "which has no predictions"
                )
            if np.asarray(std).shape != np.asarray(s["target"]).shape[1:]:
                raise ConfigError(
                    f"the uncertainty map of {key!r} for sample {s['id']!r} has shape "
                    f"{np.asarray(std).shape}, expected the patch's "
                    f"{np.asarray(s['target']).shape[1:]}"
                )
    n_dates = max(len(s.get("input_dates") or ()) for s in samples)
    for s in samples:
        stack = list(s.get("input_dates") or ())
        shape = np.asarray(s["target"]).shape
        for t, image in enumerate(stack):
            if np.asarray(image).shape != shape:
                raise ConfigError(
                    f"input date {t + 1} of sample {s['id']!r} has shape "
                    f"{np.asarray(image).shape}, expected the target's {shape}"
                )
        if s.get("date_labels") is not None and len(s["date_labels"]) != len(stack):
            raise ConfigError(
                f"sample {s['id']!r} has {len(s['date_labels'])} date label(s) for {len(stack)} "
                "input date(s)"
            )
    out.mkdir(parents=True, exist_ok=True)
    columns: list[dict[str, str]] = [
        {
            "key": f"input_{t}",
            "label": labels.get(f"input_{t}", f"Input date {t}"),
            "kind": "input_date",
        }
        for t in range(1, n_dates + 1)
    ]
    cloudy_label = "Cloudy input (last date)" if n_dates else "Cloudy input"
    columns.append({"key": "cloudy", "label": labels.get("cloudy", cloudy_label)})
    sar_label = "SAR (VV, VH), last date" if n_dates else "SAR (VV, VH)"
    columns.append({"key": "sar", "label": labels.get("sar", sar_label)})
    for k in predictions:
        columns.append({"key": k, "label": labels.get(k, k)})
        if k in with_std:
            std_label = labels.get(f"{k}_std", f"{labels.get(k, k)}: uncertainty (std)")
            columns.append({"key": f"{k}_std", "label": std_label})
    columns.append({"key": "target", "label": labels.get("target", "Cloud-free target")})
    columns.append({"key": "mask", "label": labels.get("mask", "Cloud mask")})

    # the stretches are pooled over every shown patch
    targets = [np.asarray(s["target"]) for s in samples]
    sars = [np.asarray(s["sar"]) for s in samples]
    rgb_stretch = percentile_stretch(np.concatenate([t[rgb] for t in targets], axis=2))
    sar_stretch = percentile_stretch(
        np.concatenate([sar_composite(d) for d in sars], axis=2), 1.0, 99.0
    )
    std_maps = [np.asarray(m) for s in samples for k, m in (s.get("uncertainty") or {}).items()]
    std_range = uncertainty_range(std_maps) if std_maps else None
    std_top = std_range[1] if std_range is not None else 1.0

    manifest_samples: list[dict[str, Any]] = []
    for i, (s, target_r, sar_db) in enumerate(zip(samples, targets, sars)):
        sid = str(s["id"])
        shadow = s.get("shadow_mask")
        images = {
            "cloudy": rgb_image(np.asarray(s["optical"]), band_names, rgb_stretch),
            "sar": sar_image(sar_db, sar_stretch),
            "target": rgb_image(target_r, band_names, rgb_stretch),
            "mask": mask_image(_plane(s["cloud_mask"]), None if shadow is None else _plane(shadow)),
        }
        for key, preds in predictions.items():
            images[key] = rgb_image(np.asarray(preds[i]), band_names, rgb_stretch)
        stds = dict(s.get("uncertainty") or {})
        for key, std in stds.items():
            images[f"{key}_std"] = uncertainty_image(np.asarray(std), std_top)
        stack = list(s.get("input_dates") or ())
        date_labels = list(s.get("date_labels") or [None] * len(stack))
        for t, image in enumerate(stack, start=1):
            images[f"input_{t}"] = rgb_image(np.asarray(image), band_names, rgb_stretch)
        files: dict[str, str] = {}
        for col in columns:
            if col["key"] not in images:  # a model without a map, a shorter series
                continue
            name = f"{sid}_{col['key']}.png"
            side = min_side
            if col.get("kind") == "input_date":
                side = max(1, round(min_side * INPUT_DATE_SCALE))
            save_png(enlarge(images[col["key"]], side), out / name)
            files[col["key"]] = name
        entry: dict[str, Any] = {"id": sid, "cloud_cover": float(s["cloud_cover"]), "images": files}
        if stack:
            entry["input_dates"] = {
                f"input_{t}": None if d is None else str(d)
                for t, d in enumerate(date_labels, start=1)
            }
        if "metrics" in s:
            entry["metrics"] = dict(s["metrics"])
        if stds:
            entry["uncertainty"] = {
                k: float(np.nanmean(np.asarray(v, dtype=np.float64))) for k, v in stds.items()
            }
        manifest_samples.append(entry)
    area = (
        f"the central {metrics_crop} x {metrics_crop} px (the metric protocol's crop, as in "
        "the metrics table)"
        if metrics_crop
        else "the whole patch (as in the metrics table)"
    )
    manifest = {
        "columns": columns,
        "samples": manifest_samples,
        "metrics_region": "inside_clouds",
        "metric_protocol": metric_protocol,
        "metrics_area": area,
        "rgb": f"{','.join(RGB_BANDS)}, one 2-98 % stretch per band from the targets of all "
        "the patches shown",
        "sar": "red VV, green and blue VH (dB), 1-99 % stretch over all the patches shown",
        "mask": "white cloud, blue cloud shadow, grey clear (the dataset's cloud detector)",
    }
    if n_dates:
        manifest["input_dates"] = (
            "every real input date of the series in the order the model sees it (the last "
            "one is the cloudy input), in the same RGB stretch, at half the size of the "
            "other panels"
        )
    if std_range is not None:
        save_png(colour_bar(), out / UNCERTAINTY_COLOURBAR)
        manifest["uncertainty"] = (
            f"predicted standard deviation averaged over the bands (reflectance), colour map "
            f"{UNCERTAINTY_CMAP} from 0 (black) to {std_range[1]:.4g} (the 99th percentile of "
            "every map shown; larger values saturate), one scale for all the patches and models"
        )
        manifest["uncertainty_range"] = [std_range[0], std_range[1]]
        manifest["uncertainty_colourbar"] = UNCERTAINTY_COLOURBAR
    atomic_write_json(out / PANELS_JSON, manifest)
    return manifest


# ---------------------------------------------------------------------------------- scenes
def _read_rgb(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """B04, B03, B02 of a GeoTIFF, averaged down to ``shape``, float DN with NaN as nodata."""
    from rasterio.enums import Resampling

    from cloudfree.io.geotiff import open_raster

    with open_raster(path) as src:
        names = [d or "" for d in src.descriptions]
        if all(b in names for b in RGB_BANDS):
            idx = [names.index(b) + 1 for b in RGB_BANDS]
        elif src.count == 13:  # L1C band order without descriptions
            idx = [4, 3, 2]
        else:
            raise InputFileError(path, f"has no {','.join(RGB_BANDS)} band descriptions")
        is_float = np.issubdtype(np.dtype(src.dtypes[0]), np.floating)
        valid = src.read_masks(idx[0], out_shape=shape, resampling=Resampling.nearest) > 0
        arr = src.read(idx, out_shape=(3, *shape), resampling=Resampling.average)
    arr = arr.astype(np.float32)
    if is_float and np.nanmax(arr, initial=0.0) <= 2.0:
        arr *= 10000.0  # float32 reflectance outputs of predict
    arr[:, ~valid] = np.nan
    return arr


def render_scene_images(
    images: Mapping[str, str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    reference: str | None = None,
    mask: str | os.PathLike[str] | None = None,
    max_side: int = 512,
    prefix: str = "scene",
) -> dict[str, str]:
    """Decimated RGB PNGs of co-registered scene GeoTIFFs with one shared stretch.

    Args:
        images: key -> GeoTIFF on one grid (13-band L1C DN, or predict outputs: uint16 DN or
            float32 reflectance), e.g. ``{"cloudy": ..., "glf_cr": ..., "clear": ...}``.
        out_dir: where ``<prefix>_<key>.png`` are written (atomically).
        reference: key whose 2-98 % percentiles set the stretch (default: the last image).
        mask: optional int8 mask GeoTIFF (1 cloud, -1 shadow) rendered as ``<prefix>_mask.png``.
        max_side: longest side of the PNGs (area-averaged decimation).
        prefix: file-name prefix.

    Returns:
        key -> PNG file name (relative to ``out_dir``), ``mask`` included when given.
    """
    from cloudfree.io.geotiff import raster_info

    if not images:
        raise ConfigError("no scene image to render")
    out = Path(out_dir)
    first = raster_info(next(iter(images.values())))
    scale = max(first.height, first.width) / max(1, max_side)
    shape = (
        max(1, round(first.height / max(scale, 1.0))),
        max(1, round(first.width / max(scale, 1.0))),
    )
    arrays = {k: _read_rgb(Path(p), shape) for k, p in images.items()}
    ref = arrays[reference if reference is not None else list(arrays)[-1]]
    stretch = percentile_stretch(ref)
    files: dict[str, str] = {}
    for key, arr in arrays.items():
        name = f"{prefix}_{key}.png"
        save_png(apply_stretch(arr, stretch), out / name)
        files[key] = name
    if mask is not None:
        from rasterio.enums import Resampling

        from cloudfree.io.geotiff import open_raster

        with open_raster(mask) as src:
            m = src.read(1, out_shape=shape, resampling=Resampling.nearest)
        name = f"{prefix}_mask.png"
        save_png(mask_image(m == 1, m == -1), out / name)
        files["mask"] = name
    return files
