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
* **Small patches** are enlarged by an integer factor with nearest-neighbour sampling (crisp
  pixels) so that they are at least :data:`PANEL_MIN_SIDE` pixels wide.
* **Which patches**: :func:`select_by_cover` takes evenly spaced ranks of the cloud-cover
  order, so the panels run from the clearest to the cloudiest test patch.
* **Files**: one PNG per panel, written atomically, listed with paths relative to the panel
  directory in ``panels.json`` (:data:`PANELS_JSON`), which is what
  :func:`cloudfree.report.build_report` reads.
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

__all__ = [
    "MASK_COLOURS",
    "PANELS_DIR",
    "PANELS_JSON",
    "PANEL_MIN_SIDE",
    "RGB_BANDS",
    "apply_stretch",
    "enlarge",
    "mask_image",
    "panels_for_evaluation",
    "percentile_stretch",
    "render_sample_panels",
    "render_scene_images",
    "rgb_image",
    "sar_composite",
    "sar_image",
    "save_png_array",
    "select_by_cover",
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
#: Sub-directory of a report directory holding the sample panels, and its manifest.
PANELS_DIR = "panels"
PANELS_JSON = "panels.json"


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


def enlarge(image: np.ndarray, min_side: int = PANEL_MIN_SIDE) -> np.ndarray:
    """Nearest-neighbour enlargement of ``uint8 [H, W, 3]`` by the smallest integer factor that
    makes the width at least ``min_side`` (no change when it already is)."""
    factor = max(1, math.ceil(min_side / max(1, image.shape[1])))
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def save_png_array(image: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write ``uint8 [H, W, 3]`` as a PNG atomically (via the quicklook's ``save_png``)."""
    from PIL import Image

    from cloudfree.predict.quicklook import save_png

    return save_png(Image.fromarray(np.ascontiguousarray(image)), path)


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
def _reflectance(x: Any, protocol: str) -> np.ndarray:
    from cloudfree.normalization import denormalize_optical

    return np.asarray(denormalize_optical(np.asarray(x, dtype=np.float32), protocol)) / 10000.0


def render_sample_panels(
    models: Mapping[str, Any],
    dataset: Any,
    indices: Sequence[int],
    out_dir: str | os.PathLike[str],
    *,
    labels: Mapping[str, str] | None = None,
    metric_protocol: str = "uncrtaints",
    min_side: int = PANEL_MIN_SIDE,
) -> dict[str, Any]:
    """Render the panels of some samples of ``dataset`` and write them with ``panels.json``.

    Args:
        models: report key -> network (``model(optical=..., sar=...)``, built by
            :func:`cloudfree.models.create_model` / ``load_pretrained``, so that its
            ``cloudfree_config["protocol"]`` names its scaling). Run in eval mode, no gradients.
        dataset: a :class:`cloudfree.data.SEN12MSCR` (samples with ``optical``, ``sar``,
            ``target``, ``cloud_mask``, ``shadow_mask``, ``valid_mask``, ``cloud_cover``,
            ``id``), scaled with the models' protocol (``dataset.protocol``) and holding the
            RGB bands.
        indices: which samples (e.g. :func:`select_by_cover` of their covers).
        out_dir: directory for the PNGs and ``panels.json`` (created).
        labels: report key -> column title (default: the key).
        metric_protocol: protocol of the per-panel inside-cloud PSNR / MAE captions.
        min_side: enlarge panels narrower than this (nearest neighbour).

    Returns:
        The manifest written to ``out_dir/panels.json``: ``columns`` (``[{"key", "label"}]`` in
        display order: cloudy, SAR, each model, target, mask), ``samples`` (``[{"id",
        "cloud_cover", "images": {key: file name}, "metrics": {name: {"psnr", "mae"}}}]``,
        metrics inside clouds, ``identity`` included; null where the patch has no cloud pixel)
        and notes on the rendering.
    """
    import torch

    from cloudfree.metrics import image_metrics
    from cloudfree.models import run_model
    from cloudfree.normalization import denormalize_sar

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = dict(labels or {})
    protocol = str(dataset.protocol)
    band_names = list(dataset.bands.names)
    _rgb_positions(band_names)
    for key, model in models.items():
        cfg = getattr(model, "cloudfree_config", None) or {}
        if cfg.get("protocol", protocol) != protocol:
            raise ConfigError(
                f"model {key!r} expects the {cfg.get('protocol')!r} scaling but the panel "
                f"dataset is scaled with {protocol!r}"
            )
    columns = [{"key": "cloudy", "label": labels.get("cloudy", "Cloudy input")}]
    columns.append({"key": "sar", "label": labels.get("sar", "SAR (VV, VH)")})
    columns += [{"key": k, "label": labels.get(k, k)} for k in models]
    columns.append({"key": "target", "label": labels.get("target", "Cloud-free target")})
    columns.append({"key": "mask", "label": labels.get("mask", "Cloud mask")})

    # first pass: run the models; the stretches are pooled over every shown patch
    states = {k: m.training for k, m in models.items()}
    rgb = _rgb_positions(band_names)
    items: list[dict[str, Any]] = []
    try:
        with torch.no_grad():
            for index in indices:
                s = dataset[int(index)]
                preds = {}
                for key, model in models.items():
                    model.eval()
                    result = run_model(model, optical=s["optical"][None], sar=s["sar"][None])
                    preds[key] = result.pred.float()
                items.append({"sample": s, "preds": preds})
    finally:
        for key, model in models.items():
            model.train(states[key])
    if not items:
        raise ConfigError("no sample to render panels of")
    targets = [_reflectance(it["sample"]["target"], protocol) for it in items]
    sars = [np.asarray(denormalize_sar(it["sample"]["sar"].numpy(), protocol)) for it in items]
    rgb_stretch = percentile_stretch(np.concatenate([t[rgb] for t in targets], axis=2))
    sar_stretch = percentile_stretch(
        np.concatenate([sar_composite(d) for d in sars], axis=2), 1.0, 99.0
    )

    samples: list[dict[str, Any]] = []
    for it, target_r, sar_db in zip(items, targets, sars):
        s, preds = it["sample"], it["preds"]
        sid = str(s["id"])
        optical = s["optical"][None]
        cloud = s["cloud_mask"][None] > 0.5
        region = cloud & s["valid_mask"][None].bool() if "valid_mask" in s else cloud
        images = {
            "cloudy": rgb_image(_reflectance(optical[0], protocol), band_names, rgb_stretch),
            "sar": sar_image(sar_db, sar_stretch),
            "target": rgb_image(target_r, band_names, rgb_stretch),
            "mask": mask_image(s["cloud_mask"][0].numpy(), s["shadow_mask"][0].numpy()),
        }
        metrics: dict[str, Any] = {}
        y = torch.from_numpy(target_r[None])
        for key, pred in {"identity": optical, **preds}.items():
            p_r = _reflectance(pred[0], protocol)
            if key != "identity":
                images[key] = rgb_image(p_r, band_names, rgb_stretch)
            if bool(region.any()):
                m = image_metrics(torch.from_numpy(p_r[None]), y, metric_protocol, region)
                metrics[key] = {"psnr": float(m["psnr"][0]), "mae": float(m["mae"][0])}
            else:
                metrics[key] = None
        files: dict[str, str] = {}
        for col in columns:
            name = f"{sid}_{col['key']}.png"
            save_png_array(enlarge(images[col["key"]], min_side), out / name)
            files[col["key"]] = name
        samples.append(
            {"id": sid, "cloud_cover": float(s["cloud_cover"]), "images": files, "metrics": metrics}
        )
    manifest = {
        "columns": columns,
        "samples": samples,
        "metrics_region": "inside_clouds",
        "metric_protocol": metric_protocol,
        "rgb": f"{','.join(RGB_BANDS)}, one 2-98 % stretch per band from the targets of all "
        "the patches shown",
        "sar": "red VV, green and blue VH (dB), 1-99 % stretch over all the patches shown",
        "mask": "white cloud, blue cloud shadow, grey clear (the dataset's cloud detector)",
    }
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
        save_png_array(apply_stretch(arr, stretch), out / name)
        files[key] = name
    if mask is not None:
        from rasterio.enums import Resampling

        from cloudfree.io.geotiff import open_raster

        with open_raster(mask) as src:
            m = src.read(1, out_shape=shape, resampling=Resampling.nearest)
        name = f"{prefix}_mask.png"
        save_png_array(mask_image(m == 1, m == -1), out / name)
        files["mask"] = name
    return files


def panels_for_evaluation(
    run_dir: str | os.PathLike[str],
    summary: Mapping[str, Any],
    n: int,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    data_root: str | os.PathLike[str] | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """Panels of ``n`` patches of an evaluated split, from low to high cloud cover, written to
    ``run_dir/panels`` (what ``cloudfree report RUN_DIR --panels N`` does).

    The model and the data default to those the summary of ``cloudfree evaluate --checkpoint``
    records (``checkpoint``, ``dataset.root``, ``split``); the dataset is read as the model
    expects (its normalisation protocol and bands, whole patches).

    Raises:
        ConfigError: the summary does not say which model or data, and they were not given.
    """
    from cloudfree.data import SEN12MSCR
    from cloudfree.evaluate import load_model_for_evaluation

    dataset_info = summary.get("dataset")
    ckpt = checkpoint or summary.get("checkpoint")
    root = data_root or (dataset_info.get("root") if isinstance(dataset_info, Mapping) else None)
    if ckpt is None or root is None:
        raise ConfigError(
            "panels need the model and the data, which this summary does not name; pass "
            "--checkpoint RUN_OR_WEIGHTS and --data ROOT"
        )
    model = load_model_for_evaluation(ckpt)
    cfg = model.cloudfree_config  # type: ignore[attr-defined]
    names = [k for k in summary.get("models", {}) if k != "identity"]
    key = str(cfg["name"]) if cfg["name"] in names or len(names) != 1 else names[0]
    split = str(summary.get("split", "test"))
    dataset = SEN12MSCR(
        root,
        split=split if split in ("train", "val", "test", "all") else "test",  # type: ignore[arg-type]
        protocol=cfg["protocol"],
        bands=cfg["bands"],
        crop="center",
    )
    indices = select_by_cover(dataset.cloud_covers(progress=False), n)
    return render_sample_panels(
        {key: model},
        dataset,
        indices,
        Path(run_dir) / PANELS_DIR,
        labels={key: label or key},
        metric_protocol=str(summary.get("protocol", "uncrtaints")),
    )
