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
@click.argument(
    "config_file", metavar="CONFIG.yaml", type=click.Path(path_type=Path), required=False
)
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
@click.option(
    "--paper-table",
    "paper_tables",
    multiple=True,
    metavar="NAME",
    help="Also lay our numbers out next to a published table (repeatable), written as "
    "paper_NAME.md; --paper-table list names the shipped tables.",
)
@click.option(
    "--synthetic",
    is_flag=True,
    help="No config: train a compact model of every family on the simulator, then benchmark "
    "them with the baselines (about 15 minutes on 2 CPU cores).",
)
@click.option(
    "--families",
    default=None,
    metavar="A,B",
    help="With --synthetic: only these families (comma-separated; --families list names them).",
)
@click.option(
    "--steps",
    type=int,
    default=None,
    help="With --synthetic: training steps per model (default: the shipped budget, 240).",
)
@click.option("--device", default="cpu", show_default=True, help="With --synthetic: cpu or cuda.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def benchmark(
    config_file: Path | None,
    out: Path | None,
    overwrite: bool,
    assignments: tuple[str, ...],
    paper_tables: tuple[str, ...],
    synthetic: bool,
    families: str | None,
    steps: int | None,
    device: str,
    quiet: bool,
) -> None:
    """Benchmark models and baselines on a dataset: metrics with intervals, strata, complexity.

    \b
    cloudfree benchmark CONFIG.yaml [--out DIR] [--overwrite] [--set key=value ...]

    Reads each sample once and feeds every model (each with its own normalisation); writes
    per_image.csv, summary.json, tables.md, tables.csv and complexity.csv into the output
    directory. Means come with a 95 % percentile bootstrap interval over images.

    \b
    Resumes: the (model, shard) cells of an earlier or killed run with the same settings are
    kept under OUT/cells and reused. Distributed: torchrun --nproc_per_node N -m cloudfree
    benchmark CONFIG.yaml --out OUT shards the images over the ranks (OUT shared by all).
    """
    from cloudfree.cli.models_cmd import parse_assignments
    from cloudfree.evaluate.benchmark import (
        load_benchmark_config,
        paper_table_markdown,
        run_benchmark,
    )
    from cloudfree.evaluate.paper_tables import list_paper_tables, load_paper_table
    from cloudfree.io.atomic import atomic_write_text
    from cloudfree.io.outputs import check_output

    if "list" in paper_tables:
        for name in list_paper_tables():
            click.echo(name)
        return
    if synthetic or families is not None or steps is not None:
        if families != "list" and not synthetic:
            raise click.UsageError("--families and --steps go with --synthetic")
        if synthetic and (config_file is not None or assignments or paper_tables):
            raise click.UsageError("--synthetic takes no CONFIG.yaml, --set or --paper-table")
        _synthetic(out, overwrite, families, steps, device, quiet)
        return
    if config_file is None:
        raise click.UsageError("give CONFIG.yaml, or --synthetic for the built-in benchmark")
    for name in paper_tables:
        load_paper_table(name)  # an unknown name fails before the benchmark runs
    config = load_benchmark_config(config_file, parse_assignments(assignments), out=out)
    out_dir = Path(out if out is not None else (config.out or "benchmark"))
    table_files = [out_dir / f"paper_{name}.md" for name in paper_tables]
    for path in table_files:
        check_output(path, overwrite=overwrite)
    result = run_benchmark(config, overwrite=overwrite, progress=not quiet)
    if result.rank != 0:  # a torchrun rank other than 0: its shards are stored, rank 0 reports
        return
    for name, path in zip(paper_tables, table_files, strict=True):
        atomic_write_text(path, paper_table_markdown(result, config, name) + "\n")
        result.files[f"paper_{name}"] = path
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
    if result.cells_reused:
        click.echo(
            f"resumed: {result.cells_reused} (model, shard) cell"
            f"{'' if result.cells_reused == 1 else 's'} of an earlier run reused, "
            f"{result.cells_scored} scored"
        )


def _synthetic(
    out: Path | None, overwrite: bool, families: str | None, steps: int | None, device: str,
    quiet: bool,
) -> None:  # fmt: skip
    """``--synthetic`` (:mod:`cloudfree.demo.synthetic_benchmark`)."""
    from cloudfree.demo.synthetic_benchmark import load_synthetic_spec, run_synthetic_benchmark
    from cloudfree.report.benchmark_page import rank_by_psnr

    if families == "list":
        for family, entry in load_synthetic_spec()["families"].items():
            click.echo(f"{family}: {entry['model']}")
        return
    picked = None if families is None else [f.strip() for f in families.split(",") if f.strip()]
    result = run_synthetic_benchmark(
        out if out is not None else Path("benchmark_synthetic"),
        families=picked,
        steps=steps,
        overwrite=overwrite,
        device=device,
        progress=not quiet,
        echo=click.echo,
    )
    for part, res in result.parts.items():
        protocol, table = next(iter(res.summary["protocols"].items()))
        psnr = {entry: _inside_psnr(regions) for entry, regions in table["models"].items()}
        click.echo(f"{part.replace('_', ' ')} ({protocol}): mean PSNR inside clouds")
        width = max(len(e) for e in psnr)
        for entry in rank_by_psnr(list(psnr), psnr):
            click.echo(f"  {entry.ljust(width)}  {psnr[entry]:6.2f} dB")
        click.echo(f"  report: {(res.out_dir / 'report.html').resolve()}")
    click.echo(f"done in {result.timings['total'] / 60:.1f} min: {result.out.resolve()}")


def _inside_psnr(regions: dict) -> float:
    value = regions.get("inside_clouds", {}).get("all", {}).get("all", {}).get("psnr", {})
    mean = value.get("mean") if isinstance(value, dict) else None
    return float("nan") if mean is None else float(mean)
