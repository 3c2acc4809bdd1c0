"""`cloudfree models ...`: list the registered models, convert official checkpoints."""

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
