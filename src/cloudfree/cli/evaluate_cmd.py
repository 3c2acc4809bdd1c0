"""`cloudfree evaluate`: image metrics of predictions against references.

Two modes, chosen by the options given (exactly one):

* ``--pred DIR --target DIR``: GeoTIFF predictions paired by file name with references
  (:func:`cloudfree.evaluate.evaluate_directories`); writes a per-image CSV (``--out`` FILE).
* ``--checkpoint RUN_OR_WEIGHTS --data ROOT``: trained models (pretrained weights directories or
  training run directories; ``--checkpoint`` may be repeated, ``KEY=PATH`` names a model's
  column) on one SEN12MS-CR split, next to the identity baseline, in one pass and one table
  (:func:`cloudfree.evaluate.evaluate_checkpoints`); writes ``per_image.csv`` and
  ``summary.json`` into ``--out`` DIR. ``--season S`` keeps one season (and makes ``all`` the
  default split), ``--sample N [--seed K]`` draws N images of it at random (paper 000's
  out-of-domain sets), ``--resize N`` resizes every image (the MMCANet protocol: 128) and
  ``--metric-bands rgb`` scores only B04, B03, B02 (any ``--protocol``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from cloudfree.cli._options import inference_options
from cloudfree.metrics import METRIC_NAMES, METRIC_PROTOCOLS, MetricProtocol
from cloudfree.metrics.protocols import metric_labels

DEFAULT_OUT = "evaluation_per_image.csv"
DEFAULT_OUT_DIR = "evaluation"

#: Options of each mode (click parameter names), for the mode checks.
_DIR_MODE = {"pred_dir": "--pred", "target_dir": "--target", "bands": "--bands"}
_MODEL_MODE = {
    "checkpoints": "--checkpoint",
    "data_root": "--data",
    "split": "--split",
    "batch_size": "--batch-size",
    "device": "--device",
    "num_workers": "--num-workers",
    "limit": "--limit",
    "skip_incomplete": "--skip-incomplete",
    "csv_path": "--csv",
    "dataset": "--dataset",
    "sampler": "--sampler",
    "season": "--season",
    "sample": "--sample",
    "seed": "--seed",
    "resize": "--resize",
    "metric_bands": "--metric-bands",
    "precision": "--precision",
    "compile_model": "--compile",
}
#: How ``evaluate`` spells the dataset options that errors name (``fix_option`` -> text).
EVALUATE_OPTION_NAMES = {"skip_incomplete": "--skip-incomplete", "csv_path": "--csv PATH"}
_TABLE_METRICS = ("psnr", "ssim", "sam", "mae")
_REGION_LABELS = {
    "overall": "overall",
    "inside_clouds": "inside clouds",
    "outside_clouds": "outside clouds",
}


def _fmt(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def _uncertainty_line(name: str, u: dict[str, Any]) -> str:
    """One line of a variance model's uncertainty metrics (``summary["models"][name]
    ["uncertainty"]``, reflectance units)."""

    def num(key: str) -> str:
        v = u.get(key)
        return _fmt(float(v)) if isinstance(v, (int, float)) else "nan"

    return (
        f"uncertainty {name}: UCE {num('uce')}, AUCE {num('auce')} (official, signed mean "
        f"error); clean UCE {num('uce_clean')}, AUCE {num('auce_clean')}; RMS std "
        f"{num('rms_std')} vs RMSE {num('rmse')}; Spearman(var, SE) "
        f"{num('spearman_var_error')}; {u.get('n', 0)} images"
    )


def _given(ctx: click.Context, names: dict[str, str]) -> list[str]:
    """Options of ``names`` that the user gave (on the command line or via the environment)."""
    return [
        flag
        for param, flag in names.items()
        if ctx.get_parameter_source(param) not in (None, ParameterSource.DEFAULT)
    ]


@click.command("evaluate")
@click.option(
    "--pred",
    "pred_dir",
    type=click.Path(path_type=Path),
    help="[folders] Folder of predicted GeoTIFFs (S2 DN, searched recursively).",
)
@click.option(
    "--target",
    "target_dir",
    type=click.Path(path_type=Path),
    help="[folders] Folder of reference GeoTIFFs; each prediction needs one of the same name.",
)
@click.option(
    "--bands",
    default=None,
    help="[folders] Evaluate only these bands: 'rgb' or names such as B04,B03,B02 (default: all).",
)
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    metavar="[KEY=]PATH",
    help="[model] Pretrained weights directory (config.json + model.safetensors) or training "
    "run directory (weights/best, else weights/final). Repeat it to evaluate several models "
    "in one table; KEY= names a model's entry (default: its registry name).",
)
@click.option(
    "--data",
    "data_root",
    type=click.Path(path_type=Path),
    help="[model] SEN12MS-CR root (official or flat layout).",
)
@click.option(
    "--dataset",
    default="sen12mscr",
    show_default=True,
    help="[model] Registered dataset of --data: sen12mscr, or sen12mscr_ts (time series; the "
    "temporal baselines least_cloudy, mosaic, most_recent_clear are reported too).",
)
@click.option(
    "--sampler",
    type=click.Choice(["fixed", "random", "ca_mtcr"]),
    default=None,
    help="[model] sen12mscr_ts: how input and target dates are chosen (default fixed).",
)
@click.option(
    "--split",
    type=click.Choice(["train", "val", "test", "all"]),
    default=None,
    help="[model] Dataset split to evaluate on (default: test; all with --season).",
)
@click.option(
    "--season",
    default=None,
    metavar="SEASON",
    help="[model] SEN12MS-CR only: evaluate one season (spring, summer, fall, winter or "
    "ROIs1868_summer ...), by default all of its images (--split all).",
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="[model] Evaluate N images drawn at random from the split (and season), e.g. paper "
    "000's out-of-domain sets: --season summer --sample 951 (fall 1514, winter 954).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    metavar="K",
    help="[model] Seed of the --sample draw (default 0); the same seed and files give the "
    "same images.",
)
@click.option(
    "--resize",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="[model] SEN12MS-CR only: resize every image to N x N (bilinear, antialiased; masks "
    "nearest) before the models and the metrics; the MMCANet protocol uses 128.",
)
@click.option(
    "--metric-bands",
    default=None,
    metavar="BANDS",
    help="[model] Score only these bands of every model's prediction: 'rgb' (B04,B03,B02) "
    "or names such as B04,B08; works with every --protocol (default: all bands).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="[model] Images per batch.",
)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    metavar="cpu|cuda[:N]",
    help="[model] Device to run the model and the metrics on.",
)
@click.option(
    "--num-workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="[model] DataLoader worker processes.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="[model] Evaluate only the first N samples of the split.",
)
@click.option(
    "--skip-incomplete",
    is_flag=True,
    help="[model] Skip dataset samples with a missing file instead of failing.",
)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="[model] File list of a flat-layout dataset (when the root holds several CSV files).",
)
@click.option(
    "--protocol",
    type=click.Choice(sorted(METRIC_PROTOCOLS)),
    default="uncrtaints",
    show_default=True,
    help="Metric conventions (see cloudfree.metrics.protocols).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help=f"[folders] per-image CSV file (default: {DEFAULT_OUT}); "
    f"[model] output directory for per_image.csv and summary.json (default: {DEFAULT_OUT_DIR}).",
)
@inference_options
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace existing output files (never an input: a file under --pred or --target).",
)
@click.pass_context
def evaluate(
    ctx: click.Context,
    pred_dir: Path | None,
    target_dir: Path | None,
    bands: str | None,
    checkpoints: tuple[str, ...],
    data_root: Path | None,
    dataset: str,
    sampler: str | None,
    split: str | None,
    season: str | None,
    sample: int | None,
    seed: int | None,
    resize: int | None,
    metric_bands: str | None,
    batch_size: int,
    device: str,
    num_workers: int,
    limit: int | None,
    skip_incomplete: bool,
    csv_path: Path | None,
    protocol: str,
    out: Path | None,
    precision: str,
    compile_model: bool,
    overwrite: bool,
) -> None:
    """Compute PSNR, SSIM, SAM, MAE and RMSE, in one of two modes.

    \b
    Folders:  cloudfree evaluate --pred DIR --target DIR [--bands B] [--out FILE]
    Model:    cloudfree evaluate --checkpoint [KEY=]RUN_OR_WEIGHTS [--checkpoint ...]
              --data ROOT [--split test] [--dataset sen12mscr_ts --sampler fixed]
              [--out DIR] [--batch-size N] [--device cpu|cuda] [--num-workers N] [--limit N]
              [--season S [--sample N [--seed K]]] [--resize N] [--metric-bands rgb]
              [--precision 32|bf16|16] [--compile]

    Folders: files are paired by identical name; pixel values are Sentinel-2 DN, scaled to
    [0, 1] by clipping to [0, 10000] and dividing by 10000. Prints the mean over images and
    writes one row per image to --out.

    Model: runs each model on every sample of the split (read once, scaled as each model
    expects) and reports them next to the identity baseline (the cloudy input as the
    prediction), overall, inside clouds and outside clouds and shadows, and per cloud-cover
    bin; writes per_image.csv and summary.json into --out. --season, --sample and --seed
    evaluate a seeded random sample of one season (recorded in summary.json); --metric-bands
    scores a band subset. A model with a variance output
    (UnCRtainTS) also gets its uncertainty calibration (UCE / AUCE as UnCRtainTS computes them
    and in the clean form) printed and in summary.json. --checkpoint may also be an ONNX file
    from `cloudfree models export` (run by onnxruntime); --precision and --compile change how
    torch networks run (recorded as each model's runtime in summary.json).
    """
    dir_given = _given(ctx, _DIR_MODE)
    model_given = _given(ctx, _MODEL_MODE)
    if dir_given and model_given:
        raise click.UsageError(
            f"{', '.join(dir_given)} and {', '.join(model_given)} belong to different modes: "
            "give either --pred DIR --target DIR (prediction folders) or "
            "--checkpoint PATH --data ROOT (a trained model on a dataset split)"
        )
    proto = METRIC_PROTOCOLS[protocol]
    if model_given:
        if not checkpoints or data_root is None:
            absent = (("--checkpoint", not checkpoints), ("--data", data_root is None))
            missing = " and ".join(opt for opt, gone in absent if gone)
            raise click.UsageError(
                f"missing {missing}: the model mode needs both --checkpoint PATH and --data ROOT"
            )
        _evaluate_model_mode(
            proto,
            checkpoints=_parse_checkpoints(checkpoints),
            data_root=data_root,
            split=split,
            out_dir=out if out is not None else Path(DEFAULT_OUT_DIR),
            batch_size=batch_size,
            device=device,
            num_workers=num_workers,
            limit=limit,
            skip_incomplete=skip_incomplete,
            csv_path=csv_path,
            overwrite=overwrite,
            dataset=dataset,
            dataset_options={
                k: v for k, v in (("sampler", sampler), ("resize", resize)) if v is not None
            },
            season=season,
            sample=sample,
            seed=seed,
            metric_bands=metric_bands,
            inference=_inference(precision, compile_model),
        )
        return
    if pred_dir is None or target_dir is None:
        if pred_dir is None and target_dir is None:
            raise click.UsageError(
                "choose a mode: --pred and --target (prediction folders against reference "
                "folders) or --checkpoint and --data (a trained model on a dataset split)"
            )
        missing = " and ".join(
            opt for opt, v in (("--pred", pred_dir), ("--target", target_dir)) if v is None
        )
        raise click.UsageError(f"missing {missing}: give both --pred DIR and --target DIR")
    _evaluate_dir_mode(
        proto,
        pred_dir=pred_dir,
        target_dir=target_dir,
        bands=bands,
        out_csv=out if out is not None else Path(DEFAULT_OUT),
        overwrite=overwrite,
    )


def _files_under(*paths: Path) -> list[Path]:
    """Every file under ``paths`` (a file stands for itself): the inputs of the folder mode."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += [f for f in p.rglob("*") if f.is_file()]
        elif p.exists():
            files.append(p)
    return files


def _evaluate_dir_mode(
    proto: MetricProtocol,
    *,
    pred_dir: Path,
    target_dir: Path,
    bands: str | None,
    out_csv: Path,
    overwrite: bool = False,
) -> None:
    from cloudfree.evaluate import evaluate_directories
    from cloudfree.io.outputs import check_output

    if out_csv.is_dir():
        raise click.BadParameter(
            f"{out_csv} is a directory; in the --pred/--target mode --out is the CSV file",
            param_hint="'--out'",
        )
    check_output(out_csv, inputs=_files_under(pred_dir, target_dir), overwrite=overwrite)
    rows, means = evaluate_directories(
        pred_dir, target_dir, protocol=proto, out_csv=out_csv, bands=bands, progress=True
    )
    labels = metric_labels(proto)
    width = max(len(s) for s in labels.values())
    click.echo(f"protocol: {proto.name} ({proto.description})")
    crop = f", centre {proto.center_crop}x{proto.center_crop} crop" if proto.center_crop else ""
    click.echo(f"images:   {len(rows)}{crop}")
    click.echo(f"{'metric'.ljust(width)}  mean")
    for key in METRIC_NAMES:
        click.echo(f"{labels[key].ljust(width)}  {_fmt(means[key])}")
    click.echo(f"wrote per-image metrics to {out_csv.resolve()}")


def _parse_checkpoints(values: tuple[str, ...]) -> dict[str, Path] | list[Path]:
    """``--checkpoint`` values: all ``KEY=PATH`` (a mapping) or all plain paths (a list, keyed
    by the models' names). A value is a plain path when it exists as given."""
    keyed: dict[str, Path] = {}
    plain: list[Path] = []
    for value in values:
        key, sep, rest = value.partition("=")
        if sep and key.isidentifier() and not Path(value).exists():
            if key in keyed:
                raise click.BadParameter(f"key {key!r} given twice", param_hint="'--checkpoint'")
            keyed[key] = Path(rest)
        else:
            plain.append(Path(value))
    if keyed and plain:
        raise click.BadParameter("name every model (KEY=PATH) or none", param_hint="'--checkpoint'")
    return keyed or plain


def _inference(precision: str, compile_model: bool) -> Any:
    from cloudfree.models.inference import InferenceOptions

    return InferenceOptions(precision=precision, compile=compile_model)


def _evaluate_model_mode(
    proto: MetricProtocol,
    *,
    checkpoints: dict[str, Path] | list[Path],
    data_root: Path,
    out_dir: Path,
    overwrite: bool = False,
    **kwargs: Any,
) -> None:
    from cloudfree.evaluate import evaluate_checkpoints
    from cloudfree.evaluate.model_eval import PER_IMAGE_CSV, SUMMARY_JSON
    from cloudfree.io.outputs import check_output

    if out_dir.exists() and not out_dir.is_dir():
        raise click.BadParameter(
            f"{out_dir} is a file; in the --checkpoint/--data mode --out is a directory",
            param_hint="'--out'",
        )
    ckpt_paths = list(checkpoints.values()) if isinstance(checkpoints, dict) else checkpoints
    inputs = _files_under(*ckpt_paths)
    for name in (PER_IMAGE_CSV, SUMMARY_JSON):
        # a file under the dataset root is data (not listed: a root holds ~10^5 files)
        in_data = (out_dir / name).resolve().is_relative_to(data_root.resolve())
        in_data = in_data and (out_dir / name).exists()
        extra = [out_dir / name] if in_data else []
        check_output(out_dir / name, inputs=inputs + extra, overwrite=overwrite)
    from cloudfree.data.sen12mscr import with_option_names
    from cloudfree.errors import CloudfreeError

    try:
        result = evaluate_checkpoints(
            checkpoints, data_root, protocol=proto, out_dir=out_dir, progress=True, **kwargs
        )
    except CloudfreeError as exc:
        raise with_option_names(exc, EVALUATE_OPTION_NAMES) from None
    s = result.summary
    crop = f", centre {proto.center_crop}x{proto.center_crop} crop" if proto.center_crop else ""
    click.echo(f"protocol: {proto.name} ({proto.description})")
    for key in result.model_names:
        click.echo(f"model:    {key} ({s['weights_dirs'][key]})")
    season = f" of {s['season']}" if s.get("season") else ""
    drawn = s.get("sample")
    sampled = (
        f" (drawn at random from {drawn['population']}, seed {drawn['seed']})" if drawn else ""
    )
    click.echo(
        f"data:     {s['split']} split{season}, {s['n_images']} image"
        f"{'' if s['n_images'] == 1 else 's'}{sampled}{crop}; "
        f"normalisation {s['normalisation']}, {len(s['bands'] or [])} bands"
    )
    if s.get("metric_bands"):
        click.echo(f"metrics:  on bands {','.join(s['metric_bands'])} only")
    labels = metric_labels(proto)
    region_w = max(len(v) for v in _REGION_LABELS.values())
    name_w = max(len(n) for n in s["models"])
    col_w = {m: max(len(labels[m]), 9) for m in _TABLE_METRICS}
    header = " ".join(
        ["model".ljust(name_w), "region".ljust(region_w)]
        + [labels[m].rjust(col_w[m]) for m in _TABLE_METRICS]
    )
    click.echo(header)
    for name, entry in s["models"].items():
        for region, label in _REGION_LABELS.items():
            cells = [_fmt(entry[region][m]).rjust(col_w[m]) for m in _TABLE_METRICS]
            click.echo(" ".join([name.ljust(name_w), label.ljust(region_w), *cells]))
    click.echo("(outside clouds excludes cloud shadows; means skip images without such pixels)")
    for name, entry in s["models"].items():
        if isinstance(entry.get("uncertainty"), dict):
            click.echo(_uncertainty_line(name, entry["uncertainty"]))
    click.echo(f"wrote per-image metrics to {(out_dir / PER_IMAGE_CSV).resolve()}")
    click.echo(f"wrote summary to {(out_dir / SUMMARY_JSON).resolve()}")
