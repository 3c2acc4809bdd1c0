"""`cloudfree data ...`: dataset tools.

``cloudfree data synth OUTDIR`` writes a deterministic synthetic SEN12MS-CR-style dataset
(see :func:`cloudfree.synth.write_sen12mscr_synthetic`).
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
    default=30,
    show_default=True,
    help="Number of triplets (at least 3: one each for train, val and test).",
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
    type=click.Choice(["official", "flat", "both"]),
    default="official",
    show_default=True,
    help="official SEN12MS-CR folders, flat GLF-CR folders + data.csv, or both "
    "(flat under OUTDIR/flat).",
)
@click.option(
    "--force",
    "--overwrite",
    "force",
    is_flag=True,
    help="Write into a non-empty OUTDIR, replacing the files of the same names.",
)
def synth(outdir: Path, patches: int, size: int, seed: int, layout: str, force: bool) -> None:
    """Write a synthetic SEN12MS-CR-style dataset (S1, S2, S2-cloudy triplets) to OUTDIR."""
    from tqdm import tqdm

    from cloudfree.synth import write_sen12mscr_synthetic

    bars: list[Any] = []  # the bar appears with the first patch, after argument checks

    def tick(_record: dict[str, Any]) -> None:
        if not bars:
            bars.append(tqdm(total=patches, desc="synth", unit="patch", leave=False))
        bars[0].update(1)

    try:
        records = write_sen12mscr_synthetic(
            outdir,
            patches=patches,
            size=size,
            seed=seed,
            layout=layout,
            exist_ok=force,
            on_sample=tick,
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
    click.echo(f"wrote {len(records)} triplets of {size}x{size} px (layout: {layout}) to {outdir}")
