"""`cloudfree predict`: remove clouds from whole georeferenced scenes (one, or a CSV list).

The work is done by :mod:`cloudfree.predict` (:func:`~cloudfree.predict.load_model`,
:func:`~cloudfree.predict.predict_scene`, :func:`~cloudfree.predict.predict_many`); this module
parses options and reports. Errors are one line naming the file (exit status 1) and never
leave a partial output file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cloudfree.cli._options import inference_options, optical_input_options
from cloudfree.errors import ConfigError

__all__ = ["predict"]


def _path(**kw: object) -> click.Path:
    return click.Path(path_type=Path, **kw)  # type: ignore[arg-type]


@click.command("predict")
@click.option(
    "--optical",
    type=_path(),
    multiple=True,
    help="Cloudy Sentinel-2 (L1C DN): a GeoTIFF, a .SAFE product or a folder of per-band files. "
    "Repeat it (with --sar) for a time series.",
)
@click.option(
    "--sar",
    type=_path(),
    multiple=True,
    help="Sentinel-1 (VV, VH in dB), any CRS/grid: a GeoTIFF or a folder of VV/VH files "
    "(one per --optical, same order). Optional for a model that uses no SAR ('no SAR' in "
    "`cloudfree models list`, e.g. spa_gan) and for --composite: without it no S1 is read. "
    "Given to such a model it is still read, checked and aligned, and its footprint limits "
    "the output (same pixels as a SAR model's), but its values are not used.",
)
@click.option(
    "--series",
    type=_path(),
    help="Time series as a CSV with columns date,optical,sar[,mask] (instead of --optical/--sar; "
    "sar may be absent for a model that uses no SAR or a composite).",
)
@click.option(
    "--target-date",
    help="Time series: the date to restore (YYYY-MM-DD, one of the S2 dates; default the latest).",
)
@click.option(
    "--composite",
    type=click.Choice(["least_cloudy", "mosaic", "most_recent_clear"]),
    help="Time series without a trained model: a temporal composite instead of --weights.",
)
@click.option("--out", type=_path(), help="Output GeoTIFF (on the optical grid).")
@click.option(
    "--list",
    "scene_list",
    type=_path(),
    help="CSV of scenes (header optical,sar[,out,mask,quicklook]; sar may be absent or empty "
    "for a model that uses no SAR); use with --out-dir.",
)
@click.option("--out-dir", type=_path(), help="Output directory of --list mode.")
@click.option(
    "--weights",
    type=_path(),
    help="Pretrained directory (config.json + model.safetensors, or a training run) or an "
    "official checkpoint file (then --model is required).",
)
@click.option("--model", "model_name", help="Registered model name (see `cloudfree models list`).")
@click.option(
    "--arg",
    "args",
    multiple=True,
    metavar="KEY=VALUE",
    help="Model constructor argument for an official checkpoint (repeatable).",
)
@optical_input_options
@click.option(
    "--optical-nodata",
    default="auto",
    show_default=True,
    help="Optical nodata value: auto (declared value, else 0 for integer files), none, or a "
    "number.",
)
@click.option(
    "--sar-units",
    type=click.Choice(["db", "linear"]),
    default="db",
    show_default=True,
    help="Units of the S1 values: db, or linear power (converted with 10*log10).",
)
@click.option(
    "--sar-nodata", type=float, default=None, help="S1 fill value (replaces the declared nodata)."
)
@click.option(
    "--sar-bands",
    default=None,
    help="Polarisations of the S1 file's two bands in file order, e.g. VH,VV or HH,HV "
    "(default: from the band descriptions, else VV,VH; HH/HV only when named here).",
)
@click.option("--tile-size", type=int, default=256, show_default=True, help="Tile side (px).")
@click.option("--overlap", type=int, default=32, show_default=True, help="Tile overlap (px).")
@click.option("--batch-size", type=int, default=4, show_default=True, help="Tiles per batch.")
@click.option(
    "--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N (torchrun: LOCAL_RANK)."
)
@click.option(
    "--dtype",
    type=click.Choice(["uint16", "float32"]),
    default="uint16",
    show_default=True,
    help="uint16 DN (nodata 0) or float32 reflectance (nodata NaN).",
)
@click.option("--cog", is_flag=True, help="Write a Cloud-Optimized GeoTIFF.")
@click.option(
    "--quicklook",
    type=_path(),
    help="PNG with the RGB input and prediction side by side (single-scene mode).",
)
@click.option(
    "--quicklooks",
    is_flag=True,
    help="List mode: write <out stem>.png next to every output (unless the CSV names one).",
)
@click.option(
    "--keep-clear",
    is_flag=True,
    help="Replace only cloudy pixels (rule-based cloud mask of the whole scene, or --mask); "
    "clear pixels keep their input value exactly.",
)
@click.option(
    "--replace-shadow",
    is_flag=True,
    help="With --keep-clear and the rule-based mask: also replace detected cloud shadows.",
)
@click.option(
    "--mask",
    type=_path(),
    help="Mask GeoTIFF on the optical grid for --keep-clear: non-zero = replace.",
)
@click.option(
    "--mask-dilation",
    type=int,
    default=None,
    help="Dilate the --keep-clear mask by N pixels (default 2 for the rule-based mask, 0 for "
    "--mask).",
)
@click.option(
    "--runtime",
    type=click.Choice(["torch", "onnxruntime"]),
    default=None,
    help="torch (weights directory, run or checkpoint) or onnxruntime (an ONNX file from "
    "`cloudfree models export`); default: from --weights.",
)
@inference_options
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (list mode: redo).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def predict(
    optical: tuple[Path, ...],
    sar: tuple[Path, ...],
    series: Path | None,
    target_date: str | None,
    composite: str | None,
    out: Path | None,
    scene_list: Path | None,
    out_dir: Path | None,
    weights: Path | None,
    model_name: str | None,
    args: tuple[str, ...],
    file_bands: str | None,
    fill_bands: tuple[str, ...],
    pb04_offset: bool,
    optical_scale: str,
    optical_nodata: str,
    sar_units: str,
    sar_nodata: float | None,
    sar_bands: str | None,
    tile_size: int,
    overlap: int,
    batch_size: int,
    device: str,
    dtype: str,
    cog: bool,
    quicklook: Path | None,
    quicklooks: bool,
    keep_clear: bool,
    replace_shadow: bool,
    mask: Path | None,
    mask_dilation: int | None,
    runtime: str | None,
    precision: str,
    compile_model: bool,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Remove clouds from whole Sentinel-2 scenes, with Sentinel-1 (no target needed).

    \b
    One scene:
      cloudfree predict --optical CLOUDY.tif --sar S1.tif --weights DIR --out OUT.tif
    One scene with an optical-only model (no SAR; --sar is optional for such models):
      cloudfree predict --optical CLOUDY.tif --weights checkpoint.pth --model spa_gan
        --out OUT.tif
    Many scenes (resumable; under torchrun each process takes scene i if i % WORLD_SIZE == RANK):
      cloudfree predict --list scenes.csv --out-dir OUT/ --weights DIR
    A time series of one area (a temporal model, or a composite without any model):
      cloudfree predict --optical T1.tif --sar S1_1.tif --optical T2.tif --sar S1_2.tif
        --target-date 2018-06-01 --weights DIR --out OUT.tif   (or --series dates.csv)
      cloudfree predict --series dates.csv --composite mosaic --out OUT.tif

    The output has the optical file's CRS, transform and size, one band per model band (named),
    tags naming the model, weights SHA-256, normalisation protocol and tiling.

    --sar is optional for models that use no SAR ('no SAR' in `cloudfree models list`, e.g.
    spa_gan) and for --composite, required for every other model; the same holds for the sar
    column of --list and --series. Given to a model that uses no SAR, S1 is still read and
    checked and limits the output to its footprint; leave it out to predict every valid
    optical pixel.
    """
    from cloudfree.cli.models_cmd import parse_assignments
    from cloudfree.models.inference import InferenceOptions, loaded_for_inference
    from cloudfree.predict import (
        PredictOptions,
        distributed_rank,
        load_model,
        predict_many,
        predict_scene,
        read_scene_list,
        resolve_device,
    )
    from cloudfree.predict.scene import sar_coverage_warning

    inference = InferenceOptions(precision=precision, compile=compile_model)
    _check_runtime(runtime, weights, inference)
    if series is not None or composite is not None or len(optical) > 1 or len(sar) > 1:
        _predict_series(
            optical, sar, series, target_date, composite, out, weights, model_name, args,
            device, scene_list, quicklook, keep_clear, mask, inference,
            PredictOptions(
                tile_size=tile_size, overlap=overlap, batch_size=batch_size, dtype=dtype,
                file_bands=file_bands,  # type: ignore[arg-type]
                fill_bands=fill_bands, pb04_offset=pb04_offset, optical_nodata=optical_nodata,
                optical_scale=optical_scale, sar_units=sar_units, sar_nodata=sar_nodata,
                sar_bands=sar_bands, keep_clear=keep_clear, replace_shadow=replace_shadow,
                mask_dilation=mask_dilation, cog=cog, overwrite=overwrite, progress=not quiet,
            ),
        )  # fmt: skip
        return
    if target_date is not None:
        raise ConfigError("--target-date belongs to a time series (several --optical, or --series)")
    if weights is None:
        raise ConfigError("missing --weights (a pretrained directory, run or checkpoint)")
    optical_one = optical[0] if optical else None
    sar_one = sar[0] if sar else None
    single = any(v is not None for v in (optical_one, sar_one, out))
    if scene_list is not None:
        if single:
            raise ConfigError("--list replaces --optical/--sar/--out; give one or the other")
        if out_dir is None:
            raise ConfigError("--list needs --out-dir")
        if quicklook is not None or mask is not None:
            raise ConfigError(
                "in --list mode give quicklooks and masks per scene (CSV columns quicklook, "
                "mask) or use --quicklooks"
            )
    else:
        missing = [n for n, v in (("--optical", optical_one), ("--out", out)) if v is None]
        if missing:
            # --sar is checked once the model is loaded (optional for optical-only models)
            also = "; and --sar unless the model uses no SAR" if sar_one is None else ""
            raise ConfigError(
                f"missing {', '.join(missing)}{also} (or use --list scenes.csv --out-dir DIR)"
            )
        if out_dir is not None or quicklooks:
            raise ConfigError("--out-dir and --quicklooks belong to --list mode")

    options = PredictOptions(
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        dtype=dtype,
        file_bands=file_bands,  # type: ignore[arg-type]
        fill_bands=fill_bands,
        pb04_offset=pb04_offset,
        optical_nodata=optical_nodata,
        optical_scale=optical_scale,
        sar_units=sar_units,
        sar_nodata=sar_nodata,
        sar_bands=sar_bands,
        keep_clear=keep_clear,
        replace_shadow=replace_shadow,
        mask=mask,
        mask_dilation=mask_dilation,
        cog=cog,
        quicklook=quicklook,
        overwrite=overwrite,
        progress=not quiet,
    )
    options.validate()
    rank, world, local_rank = distributed_rank()
    if scene_list is None and rank != 0:
        click.echo(f"rank {rank}: single-scene mode runs on rank 0 only; nothing to do")
        return
    jobs = read_scene_list(scene_list, out_dir) if scene_list is not None else None
    dev = resolve_device(device, local_rank=local_rank)
    loaded = load_model(weights, name=model_name, kwargs=parse_assignments(args), device=dev)
    loaded = loaded_for_inference(loaded, inference)

    if jobs is None:
        assert optical_one is not None and out is not None
        _note_unused_sar(loaded, sar_one is not None, "--sar")
        r = predict_scene(loaded, optical_one, sar_one, out, options)
        extra = (
            f", {100 * r.replaced_fraction:.1f} % replaced"
            if r.replaced_fraction is not None
            else ""
        )
        click.echo(
            f"{r.path}: {loaded.name} prediction {r.width}x{r.height}, {len(r.bands)} bands, "
            f"{r.tiles} tiles, {100 * r.valid_fraction:.1f} % valid{extra}, {r.seconds:.1f} s"
        )
        if r.quicklook is not None:
            click.echo(f"{r.quicklook}: quicklook")
        if r.std_path is not None:
            click.echo(f"{r.std_path}: predicted standard deviation (reflectance)")
        warning = sar_coverage_warning(r, sar_one)
        if warning is not None:
            click.echo(warning, err=True)
        return

    _note_unused_sar(loaded, any(j.sar is not None for j in jobs), "the sar column")
    res = predict_many(
        loaded,
        jobs,
        options,
        rank=rank,
        world_size=world,
        quicklooks=quicklooks,
        on_message=lambda m: click.echo(m, err=True),
    )
    who = f"rank {rank}/{world}: " if world > 1 else ""
    click.echo(
        f"{who}{len(res.done)} scene(s) predicted, {len(res.skipped)} skipped (output exists), "
        f"{len(res.failed)} failed, of {res.assigned} assigned ({len(jobs)} in {scene_list})"
    )
    if res.failed:
        lines = "; ".join(f"line {j.line}: {msg}" for j, msg in res.failed)
        raise click.ClickException(f"{len(res.failed)} scene(s) failed: {lines}")


def _check_runtime(runtime: str | None, weights: Path | None, inference: Any) -> None:
    """``--runtime`` against the kind of ``--weights`` (before anything is loaded)."""
    from cloudfree.models.onnx_runtime import is_onnx_file

    onnx = weights is not None and is_onnx_file(weights)
    if runtime == "onnxruntime" and not onnx:
        raise ConfigError(
            "--runtime onnxruntime runs an exported network: give --weights FILE.onnx (written "
            "by `cloudfree models export NAME --weights DIR --format onnx FILE.onnx`)"
        )
    if runtime == "torch" and onnx:
        raise ConfigError(f"{weights} is an ONNX file: it runs with --runtime onnxruntime")
    if onnx and not inference.plain:
        raise ConfigError(
            "--precision and --compile apply to the torch runtime; an ONNX file runs as "
            "exported (float32)"
        )


def _note_unused_sar(loaded: Any, given: bool, what: str) -> None:
    """On stderr: S1 was given to a network that does not use it (it still limits the output)."""
    from cloudfree.predict.scene import needs_sar

    if given and getattr(loaded, "model", None) is not None and not needs_sar(loaded):
        click.echo(
            f"note: model {loaded.name!r} uses no SAR; {what} is only read and checked, and the "
            "output is limited to the S1 footprint (leave it out to predict every optical pixel)",
            err=True,
        )


def _predict_series(
    optical: tuple[Path, ...],
    sar: tuple[Path, ...],
    series: Path | None,
    target_date: str | None,
    composite: str | None,
    out: Path | None,
    weights: Path | None,
    model_name: str | None,
    args: tuple[str, ...],
    device: str,
    scene_list: Path | None,
    quicklook: Path | None,
    keep_clear: bool,
    mask: Path | None,
    inference: Any,
    options: Any,
) -> None:
    """``cloudfree predict`` on a time series (:func:`cloudfree.predict.predict_time_series`)."""
    from cloudfree.cli.models_cmd import parse_assignments
    from cloudfree.models.inference import loaded_for_inference
    from cloudfree.predict import load_model, resolve_device
    from cloudfree.predict.timeseries import (
        CompositePredictor,
        dated_inputs,
        predict_time_series,
        read_series_csv,
    )

    if scene_list is not None or quicklook is not None or mask is not None:
        raise ConfigError("a time series takes no --list, --quicklook or --mask")
    if out is None:
        raise ConfigError("missing --out (the output GeoTIFF)")
    if series is not None:
        if optical or sar:
            raise ConfigError("--series replaces --optical/--sar; give one or the other")
        items, note = read_series_csv(series)
    else:
        items, note = dated_inputs(optical, sar)
    if note:
        click.echo(f"note: {note}", err=True)
    if (composite is None) == (weights is None):
        raise ConfigError("give either --weights (a temporal model) or --composite NAME")
    if composite is not None:
        if not inference.plain:
            raise ConfigError("--precision and --compile apply to a network; a composite has none")
        predictor: Any = CompositePredictor(composite)
    else:
        assert weights is not None
        predictor = load_model(
            weights,
            name=model_name,
            kwargs=parse_assignments(args),
            device=resolve_device(device),
            temporal=True,
        )
        predictor = loaded_for_inference(predictor, inference)
        _note_unused_sar(predictor, any(it.sar is not None for it in items), "--sar")
    r = predict_time_series(predictor, items, out, options, target_date=target_date)
    what = "composite" if composite else "prediction"
    click.echo(
        f"{r.path}: {predictor.name} {what} of {r.tags['TARGET_DATE']} from {len(items)} dates, "
        f"{r.width}x{r.height}, {100 * r.valid_fraction:.1f} % valid, {r.seconds:.1f} s"
    )
    if r.std_path is not None:
        click.echo(f"{r.std_path}: predicted standard deviation (reflectance)")
    if "NO_CLEAR_FRACTION" in r.tags and float(r.tags["NO_CLEAR_FRACTION"]) > 0:
        click.echo(
            f"Warning: {100 * float(r.tags['NO_CLEAR_FRACTION']):.1f} % of the pixels were "
            f"clear on no date; they hold the least cloudy date's value (marked in "
            f"{r.tags['NO_CLEAR_MASK']})",
            err=True,
        )
