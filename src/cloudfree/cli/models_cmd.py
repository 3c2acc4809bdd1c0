"""`cloudfree models ...`: list the registered models, convert official checkpoints, write the
model zoo page (``cloudfree models zoo``, :mod:`cloudfree.models.zoo`), export a network to
ONNX (``cloudfree models export``, :mod:`cloudfree.models.onnx_export`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from cloudfree.errors import ConfigError

__all__ = ["models", "parse_assignments"]


def parse_assignments(items: tuple[str, ...]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are read as YAML scalars (``32``, ``0.1``, ``true``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"expected key=value, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


@click.group("models")
def models() -> None:
    """Registered models: list them, convert official checkpoints."""


@models.command("list")
@click.argument("pattern", required=False)
@click.option(
    "--all",
    "include_standins",
    is_flag=True,
    help="Include the stand-in networks of the model contract (tag 'standin').",
)
def list_command(pattern: str | None, include_standins: bool) -> None:
    """List registered models (optionally those matching a shell PATTERN such as 'glf_cr*').

    The 'contract' column is the model's spec for its default arguments
    (``ModelSpec.describe()``: input layout, SAR, dates, outputs; task kinds).
    """
    from cloudfree.models import create_model, get_model_info, list_models

    names = list_models(pattern, include_standins=include_standins)
    if not names:
        hint = ""
        if list_models(pattern, include_standins=True):
            hint = " (only stand-in networks do: add --all)"
        raise click.ClickException(f"no registered model matches {pattern!r}{hint}")
    rows = []
    for name in names:
        info = get_model_info(name)
        n_params = sum(p.numel() for p in create_model(name).parameters())
        contract = info.resolve_spec().describe()
        rows.append((name, f"{n_params:,}", info.protocol, info.bands, contract, info.paper))
    headers = ("name", "parameters", "protocol", "bands", "contract", "paper")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


@models.command("convert")
@click.argument("name")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("outdir", type=click.Path(path_type=Path))
@click.option(
    "--arg",
    "args",
    multiple=True,
    metavar="KEY=VALUE",
    help="Constructor argument of the model (repeatable), e.g. --arg width=32.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace the weights already in OUTDIR (never CHECKPOINT)."
)
def convert_command(
    name: str, checkpoint: Path, outdir: Path, args: tuple[str, ...], overwrite: bool
) -> None:
    """Convert an official CHECKPOINT of model NAME into OUTDIR (safetensors + config.json).

    Weights already in OUTDIR are kept unless --overwrite is given; CHECKPOINT itself is never
    replaced. Checked before the checkpoint is read.
    """
    from cloudfree.io.outputs import check_output
    from cloudfree.models import load_official_checkpoint, save_pretrained, weights_sha256
    from cloudfree.models.hub import CONFIG_NAME, WEIGHTS_NAME

    if outdir.exists() and not outdir.is_dir():
        raise ConfigError(f"{outdir}: is a file; OUTDIR is the directory to write the weights to")
    for file in (WEIGHTS_NAME, CONFIG_NAME):
        check_output(outdir / file, inputs=[checkpoint], overwrite=overwrite, what="weights")
    kwargs = parse_assignments(args)
    model = load_official_checkpoint(name, checkpoint, **kwargs)
    save_pretrained(model, outdir, extra={"converted_from": checkpoint.name})
    click.echo(f"{outdir}: {name} weights written (sha256 {weights_sha256(outdir)[:16]}...)")


@models.command("zoo")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the page to FILE instead of printing it.",
)
@click.option("--overwrite", is_flag=True, help="Replace FILE if it exists with other content.")
@click.option(
    "--update-counts",
    is_flag=True,
    help="Recount the MACs of models whose cached count is missing or stale and rewrite the "
    "shipped cache (cloudfree/models/resources/zoo_counts.json) first; slow (minutes).",
)
def zoo_command(out: Path | None, overwrite: bool, update_counts: bool) -> None:
    """Write the model zoo page (docs/model_zoo.md) from the registry.

    For every registered model: paper, protocol, bands, contract, parameters, MACs at
    256 x 256 (T = 3), official code and our parity figure, published weights and the
    `cloudfree models convert` command for them. Without --update-counts a stale count is
    recounted for the page but not stored.
    """
    from cloudfree.io.atomic import atomic_write_text
    from cloudfree.io.outputs import check_output
    from cloudfree.models.zoo import model_zoo_markdown
    from cloudfree.models.zoo import update_counts as recount

    if out is not None and out.is_dir():
        raise ConfigError(f"{out}: is a directory; --out is the Markdown file to write")
    if update_counts:
        names = recount()
        click.echo(f"recounted: {', '.join(names) or 'none (the cache is current)'}", err=True)
    text = model_zoo_markdown()
    if out is None:
        click.echo(text, nl=False)
        return
    if out.is_file() and out.read_text(encoding="utf-8") == text:
        click.echo(f"{out}: model zoo page unchanged", err=True)
        return
    check_output(out, overwrite=overwrite, what="page")
    atomic_write_text(out, text)
    click.echo(f"{out}: model zoo page written", err=True)


@models.command("export")
@click.argument("name")
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--weights",
    type=click.Path(path_type=Path),
    required=True,
    help="Pretrained directory or training run of model NAME.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx"]),
    default="onnx",
    show_default=True,
    help="Export format.",
)
@click.option("--size", type=click.IntRange(min=16), default=None,
              help="Side of the example input in px (the exported sizes are dynamic; default "
              "64, or two units of the network's size multiple where that is more).")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists (never the weights).")
def export_command(
    name: str, out: Path, weights: Path, fmt: str, size: int | None, overwrite: bool
) -> None:
    """Export the network NAME with --weights to OUT (ONNX: dynamic batch, height and width,
    and dates for a temporal network, whose file takes every date as real).

    Needs the optional packages onnx and onnxscript (pip install 'cloudfree[onnx]'). A network
    that torch.export cannot trace is refused with the reason (cloudfree.models.onnx_export).
    """
    from cloudfree.io.atomic import json_compatible
    from cloudfree.io.outputs import check_output
    from cloudfree.models import load_model, spec_of
    from cloudfree.models.onnx_export import export_onnx

    check_output(out, inputs=[weights], overwrite=overwrite, what="ONNX file")
    loaded = load_model(weights, name=name)
    config = dict(getattr(loaded.model, "cloudfree_config", None) or {})
    metadata = {
        "protocol": loaded.protocol,
        "bands": list(loaded.bands.names),
        "weights_sha256": loaded.weights_sha256,
        "config": json_compatible({"name": loaded.name, "kwargs": config.get("kwargs") or {}}),
    }
    path = export_onnx(
        loaded.model, out, name=loaded.name, metadata=metadata, size=size, overwrite=overwrite
    )
    dates = "dates, " if spec_of(loaded.model).inputs.temporal else ""
    click.echo(f"{path}: {loaded.name} exported to {fmt} (dynamic batch, {dates}height and width)")
