"""`cloudfree data ...`: dataset tools.

``cloudfree data synth OUTDIR`` writes a deterministic synthetic SEN12MS-CR-style dataset
(see :func:`cloudfree.synth.write_sen12mscr_synthetic`); with ``--temporal`` SEN12MS-CR-TS-style
time series (:func:`cloudfree.synth.temporal_writers.write_sen12mscr_ts_synthetic`).
``--season-domains`` renders each patch in its ROI's season (:mod:`cloudfree.synth.domains`) and
``--season-patches spring=60,winter=0:0:10`` chooses the patches per season and split (instead of
``--patches``); both are for triplets only.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import click

__all__ = ["data"]


@click.group("data")
def data() -> None:
    """Dataset tools."""


def _even_size(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value % 2:
        raise click.BadParameter(f"must be a multiple of 2, got {value}")
    return value


@data.command("synth")
@click.argument("outdir", type=click.Path(file_okay=False, dir_okay=True, path_type=Path))
@click.option(
    "--patches",
    "-n",
    type=click.IntRange(min=3),
    default=None,
    help="Number of triplets (at least 3: one each for train, val and test; default 30).",
)
@click.option(
    "--size",
    "-s",
    type=click.IntRange(min=16),
    default=256,
    show_default=True,
    callback=_even_size,
    help="Patch side in pixels (at least 16, even).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Dataset seed; the same seed writes identical files.",
)
@click.option(
    "--layout",
    type=click.Choice(["official", "flat", "both", "sen12mscr_ts", "allclear"]),
    default=None,
    help="official SEN12MS-CR folders (default), flat GLF-CR folders + data.csv, or both "
    "(flat under OUTDIR/flat); with --temporal: sen12mscr_ts (default) or allclear (JSON "
    "metadata, 3 input dates + a clear target per sample).",
)
@click.option(
    "--temporal",
    is_flag=True,
    help="Write time series (one scene on --dates dates with surface changes) instead of triplets.",
)
@click.option(
    "--dates",
    type=click.IntRange(min=2, max=30),
    default=10,
    show_default=True,
    help="--temporal: dates per time series (SEN12MS-CR-TS has 30).",
)
@click.option(
    "--change-rate",
    type=click.FloatRange(min=0.0),
    default=0.5,
    show_default=True,
    help="--temporal: expected number of surface changes per date.",
)
@click.option(
    "--season-domains",
    is_flag=True,
    help="Render each patch in its ROI's season (vegetation state, soil moisture, sun, cloud "
    "statistics); spring stays as without the flag.",
)
@click.option(
    "--season-patches",
    metavar="SPEC",
    default=None,
    help="Patches per season and split instead of --patches: comma-separated SEASON=N "
    "(about 70/15/15 % train/val/test) or SEASON=TRAIN:VAL:TEST, e.g. "
    "spring=60,summer=0:0:10,fall=0:0:10,winter=0:0:10.",
)
@click.option(
    "--force",
    "--overwrite",
    "force",
    is_flag=True,
    help="Write into a non-empty OUTDIR, replacing the files of the same names.",
)
def synth(
    outdir: Path,
    patches: int,
    size: int,
    seed: int,
    layout: str | None,
    temporal: bool,
    dates: int,
    change_rate: float,
    season_domains: bool,
    season_patches: str | None,
    force: bool,
) -> None:
    """Write a synthetic SEN12MS-CR-style dataset (S1, S2, S2-cloudy triplets, or time
    series with --temporal) to OUTDIR."""
    from tqdm import tqdm

    from cloudfree.errors import ConfigError
    from cloudfree.synth import write_sen12mscr_synthetic
    from cloudfree.synth.writers import parse_season_patches

    temporal_layouts = ("sen12mscr_ts", "allclear")
    if layout is None:
        layout = temporal_layouts[0] if temporal else "official"
    if temporal and layout not in temporal_layouts:
        raise ConfigError(
            f"--layout {layout} writes triplets; time series (--temporal) are written as "
            f"{', '.join(temporal_layouts)}"
        )
    if not temporal and layout in temporal_layouts:
        raise ConfigError(f"--layout {layout} writes time series: add --temporal")
    if temporal and (season_domains or season_patches is not None):
        raise ConfigError(
            "--season-domains and --season-patches apply to triplets, not to --temporal time "
            "series (they have their own phenology)"
        )
    if season_patches is not None and patches is not None:
        raise ConfigError("give --patches or --season-patches, not both")
    per_season = parse_season_patches(season_patches) if season_patches is not None else None
    if per_season is not None:
        total = sum(sum(c) for c in per_season.values())
    else:
        total = patches = 30 if patches is None else patches
    bars: list[Any] = []  # the bar appears with the first patch, after argument checks

    def tick(_record: dict[str, Any]) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc="synth", unit="patch", leave=False))
        bars[0].update(1)

    if temporal:
        _synth_temporal(outdir, layout, total, size, seed, dates, change_rate, force, tick, bars)
        return
    try:
        records = write_sen12mscr_synthetic(
            outdir,
            patches=patches,
            size=size,
            seed=seed,
            layout=layout,
            exist_ok=force,
            on_sample=tick,
            season_domains=season_domains,
            season_patches=per_season,
        )
    finally:
        for bar in bars:
            bar.close()
    by_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_split[r["split"]].append(r)
    for split in ("train", "val", "test"):
        rs = by_split[split]
        rois = len({r["roi"] for r in rs})
        cover = 100.0 * sum(r["cloud_cover"] for r in rs) / max(len(rs), 1)
        click.echo(f"{split}: {len(rs)} patches from {rois} ROIs, mean cloud cover {cover:.0f} %")
    if season_domains or per_season is not None:
        _echo_seasons(records, season_domains)
    click.echo(f"wrote {len(records)} triplets of {size}x{size} px (layout: {layout}) to {outdir}")


def _echo_seasons(records: list[dict[str, Any]], season_domains: bool) -> None:
    """One line per season: patches per split and mean cover (rendered domain or not)."""
    by_season: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_season[r["season"]].append(r)
    for season, rs in by_season.items():
        splits = ", ".join(
            f"{split} {n}"
            for split in ("train", "val", "test")
            if (n := sum(r["split"] == split for r in rs))
        )
        cover = 100.0 * sum(r["cloud_cover"] for r in rs) / len(rs)
        how = "season domain" if season_domains else "rendered as spring"
        click.echo(f"{season}: {splits} ({how}), mean cloud cover {cover:.0f} %")


def _synth_temporal(
    outdir: Path,
    layout: str,
    patches: int,
    size: int,
    seed: int,
    dates: int,
    change_rate: float,
    force: bool,
    tick: Any,
    bars: list[Any],
) -> None:
    from cloudfree.synth.temporal_writers import (
        write_allclear_synthetic,
        write_sen12mscr_ts_synthetic,
    )

    writer = write_sen12mscr_ts_synthetic if layout == "sen12mscr_ts" else write_allclear_synthetic
    try:
        records = writer(
            outdir,
            patches=patches,
            size=size,
            seed=seed,
            dates=dates,
            change_rate=change_rate,
            exist_ok=force,
            on_sample=tick,
        )
    finally:
        for bar in bars:
            bar.close()
    for split in ("train", "val", "test"):
        n = sum(1 for r in records if r["split"] == split)
        click.echo(f"{split}: {n} time series")
    click.echo(
        f"wrote {len(records)} time series of {dates} dates, {size}x{size} px "
        f"(layout: {layout}) to {outdir}"
    )
