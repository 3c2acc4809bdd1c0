"""``cloudfree train`` (train a model with Lightning) and ``cloudfree recipes`` (shipped configs).

::

    cloudfree train --recipe glf_cr --data ROOT [--set key=value ...] [--out RUN] [--devices N]
    cloudfree train --config my.yaml [--data ROOT] [--set key=value key=value ...]
    cloudfree train --out RUN --resume [--set trainer.max_steps=20000]   # continue a run
    torchrun --nnodes 2 --nproc-per-node 4 -m cloudfree train --recipe glf_cr --data ROOT \\
        --out /shared/runs/glf --set trainer.num_nodes=2
    cloudfree recipes list
    cloudfree recipes show dsen2cr

``--set`` takes dotted keys (``optimizer.lr=5e-4``, ``model.kwargs.width=32``), values read
as YAML scalars; it is repeatable (``--set a=1 --set b=2``) and the pairs that follow one
``--set`` count too (``--set a=1 b=2``: click hands them over as arguments). An argument that
is not ``KEY=VALUE`` is an error naming it; a key given both ways is an error too (click does
not keep the order between options and arguments, so which value wins would be a guess).
``--devices N`` sets ``trainer.devices`` and, when N > 1, DDP. See
:mod:`cloudfree.train.config` for every key and :mod:`cloudfree.train.run` for the run
directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from cloudfree.cli.models_cmd import parse_assignments
from cloudfree.errors import ConfigError

__all__ = ["recipes", "train"]

#: How ``train`` spells the dataset options that errors name (``fix_option`` -> text).
TRAIN_OPTION_NAMES = {
    "skip_incomplete": "--skip-incomplete (data.skip_incomplete: true)",
    "csv_path": "--csv PATH (data.csv_path)",
}


@click.command("train")
@click.option("--recipe", metavar="NAME", help="A shipped recipe (see `cloudfree recipes list`).")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A YAML training configuration file.",
)
@click.option(
    "--data",
    "data_root",
    type=click.Path(path_type=Path),
    help="Dataset root (sets data.root; recipes leave it empty).",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key (repeatable; several pairs may follow one --set), e.g. "
    "--set optimizer.lr=5e-4 model.kwargs.width=32.",
)
@click.argument("more_assignments", nargs=-1, metavar="[KEY=VALUE]...")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory (default runs/<recipe-or-model>-<timestamp>).",
)
@click.option(
    "--devices",
    type=click.IntRange(min=1),
    help="Number of devices (processes) per node; more than 1 trains with DDP.",
)
@click.option(
    "--skip-incomplete",
    is_flag=True,
    help="Skip dataset samples with a missing file instead of failing (data.skip_incomplete).",
)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File list of a flat-layout dataset (sets data.csv_path), when its root holds several "
    "CSV files.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --out from checkpoints/last.ckpt (its config.yaml is the base "
    "config unless --recipe or --config is given). A run directory that an attempt left "
    "without any checkpoint (it failed early) is started afresh, with or without --resume.",
)
def train(
    recipe: str | None,
    config_file: Path | None,
    data_root: Path | None,
    assignments: tuple[str, ...],
    more_assignments: tuple[str, ...],
    out: Path | None,
    devices: int | None,
    skip_incomplete: bool,
    csv_path: Path | None,
    resume: bool,
) -> None:
    """Train a cloud-removal model (Lightning) from a recipe or a config file."""
    from cloudfree.data.sen12mscr import with_option_names
    from cloudfree.errors import CloudfreeError
    from cloudfree.train.config import build_config, load_recipe, load_yaml_config
    from cloudfree.train.run import load_run_config, prepare_run
    from cloudfree.train.run import train as run_training

    if recipe and config_file:
        raise ConfigError("give either --recipe or --config, not both")
    overrides: dict[str, Any] = _overrides(assignments, more_assignments)
    if devices is not None:
        overrides["trainer.devices"] = devices
        if devices > 1 and "trainer.strategy" not in overrides:
            overrides["trainer.strategy"] = "ddp"
    if skip_incomplete:
        overrides["data.skip_incomplete"] = True
    if csv_path is not None:
        overrides["data.csv_path"] = str(csv_path)
    if recipe:
        raw, source = load_recipe(recipe), f"recipe {recipe!r}"
    elif config_file:
        raw, source = load_yaml_config(config_file), str(config_file)
    elif resume and out is not None:
        raw, source = load_run_config(out), str(out / "config.yaml")
    else:
        raise ConfigError(
            "give --recipe NAME or --config FILE (or --out RUN --resume to continue a run); "
            "see `cloudfree recipes list`"
        )
    config = build_config(raw, overrides, data_root=data_root, out=out, source=source)
    if resume and config.out is None:
        raise ConfigError("--resume needs --out RUN (the run directory to continue)")
    try:
        prepared = prepare_run(config, resume=resume)
    except CloudfreeError as exc:
        raise with_option_names(exc, TRAIN_OPTION_NAMES) from None

    from cloudfree.train.run import _env_rank_is_zero

    if _env_rank_is_zero():
        if resume and prepared.resume_from is None:
            click.echo(
                f"warning: {prepared.run_dir} holds no checkpoint (the earlier attempt stopped "
                "before its first one): starting it afresh",
                err=True,
            )
        verb = "resuming" if prepared.resume_from is not None else "training"
        click.echo(f"{verb} {prepared.config.model.name} in run directory: {prepared.run_dir}")
        n_params = sum(p.numel() for p in prepared.model.parameters())
        click.echo(f"model {prepared.config.model.name}: {n_params:,} parameters")
        workers, cores = prepared.config.data.num_workers, os.cpu_count() or 1
        if workers > cores:
            click.echo(
                f"warning: data.num_workers={workers} is more than the {cores} CPU core(s) "
                f"here, which slows loading down (--set data.num_workers={cores})",
                err=True,
            )
    try:
        result = run_training(prepared=prepared)
    except CloudfreeError as exc:
        raise with_option_names(exc, TRAIN_OPTION_NAMES) from None
    if result.is_global_zero:
        click.echo(f"finished at step {result.global_step}")
        if result.world_size > 1:
            click.echo(f"processes: {result.world_size} (distributed data parallel)")
        if result.val_metrics:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in result.val_metrics.items())
            click.echo(f"final validation: {shown}")
        else:
            click.echo("final validation: none ran (see trainer.val_check_interval)")
        click.echo(f"best weights:  {result.best_weights}")
        click.echo(f"final weights: {result.final_weights}")
        click.echo(f"last checkpoint: {result.last_checkpoint}")
        click.echo(f"run directory: {result.run_dir}")


def _overrides(options: tuple[str, ...], arguments: tuple[str, ...]) -> dict[str, Any]:
    """The ``--set`` pairs, then the extra ``KEY=VALUE`` arguments (``--set a=1 b=2``).

    Raises:
        ConfigError: an argument without ``=`` (named), or a key given both as a ``--set``
            option and as an argument.
    """
    for item in arguments:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"unexpected argument {item!r}: the arguments after --set are KEY=VALUE pairs"
            )
    overrides = parse_assignments(options)
    more = parse_assignments(arguments)
    both = sorted(set(overrides) & set(more))
    if both:
        raise ConfigError(f"{', '.join(both)} given more than once (--set {both[0]}=...)")
    return {**overrides, **more}


@click.group("recipes")
def recipes() -> None:
    """Shipped training recipes (paper settings): list them, show one."""


@recipes.command("list")
def list_command() -> None:
    """List the shipped recipes with a one-line description."""
    from cloudfree.train.config import list_recipes

    items = list_recipes()
    width = max((len(n) for n in items), default=0)
    for name, description in items.items():
        click.echo(f"{name.ljust(width)}  {description}".rstrip())


@recipes.command("show")
@click.argument("name")
def show_command(name: str) -> None:
    """Print recipe NAME (YAML, with its source comments)."""
    from cloudfree.train.config import recipe_text

    click.echo(recipe_text(name), nl=False)
