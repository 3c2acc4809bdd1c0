"""`cloudfree benchmark CONFIG.yaml`: models and baselines on one dataset, under several metric
protocols, in one pass (:mod:`cloudfree.evaluate.benchmark`, where the configuration keys and
every convention are described).

``--out DIR`` wins over the config's ``out`` (default ``benchmark``); ``--set key=value``
overrides a dotted key of the config (``--set dataset.sample=100 bootstrap.seed=1``; values
read as YAML scalars), before validation, so a misspelt key gets the "unknown key" error.
Existing output files are refused unless ``--overwrite`` is given.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("benchmark")
@click.argument("config_file", metavar="CONFIG.yaml", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output directory (default: the config's out, else ./benchmark).",
)
@click.option("--overwrite", is_flag=True, help="Replace the output files of an earlier run.")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key (repeatable), e.g. --set dataset.sample=100.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def benchmark(
    config_file: Path,
    out: Path | None,
    overwrite: bool,
    assignments: tuple[str, ...],
    quiet: bool,
) -> None:
    """Benchmark models and baselines on a dataset: metrics with intervals, strata, complexity.

    \b
    cloudfree benchmark CONFIG.yaml [--out DIR] [--overwrite] [--set key=value ...]

    Reads each sample once and feeds every model (each with its own normalisation); writes
    per_image.csv, summary.json, tables.md, tables.csv and complexity.csv into the output
    directory. Means come with a 95 % percentile bootstrap interval over images.
    """
    from cloudfree.cli.models_cmd import parse_assignments
    from cloudfree.evaluate.benchmark import load_benchmark_config, run_benchmark

    config = load_benchmark_config(config_file, parse_assignments(assignments), out=out)
    result = run_benchmark(config, overwrite=overwrite, progress=not quiet)
    s = result.summary
    ds = s["dataset"]
    click.echo(
        f"data:      {ds['name']} {ds['split']} split, {ds['n_images']} image"
        f"{'' if ds['n_images'] == 1 else 's'}; protocols {', '.join(config.protocols)}"
    )
    first = config.protocols[0]
    by_entry = s["protocols"][first]["models"]
    width = max(len(e) for e in by_entry)
    click.echo(f"{first}, overall (mean PSNR / SSIM):")
    for entry, regions in by_entry.items():
        cell = regions["overall"]["all"]["all"]
        psnr, ssim = cell["psnr"]["mean"], cell["ssim"]["mean"]
        empty = psnr is None or psnr != psnr  # no image (NaN)
        text = "n/a" if empty else f"{psnr:.2f} dB / {ssim:.4f}"
        click.echo(f"  {entry.ljust(width)}  {text}")
    for name, path in result.files.items():
        click.echo(f"wrote {name}: {path.resolve()}")
