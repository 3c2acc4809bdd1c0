"""The ``cloudfree`` command line.

Each sub-command lives in its own module of this package; this module only assembles the group
and turns :class:`~cloudfree.errors.CloudfreeError` into a one-line message (exit status 1)
instead of a traceback.
"""

from __future__ import annotations

from typing import Any

import click

from cloudfree import __version__
from cloudfree.errors import CloudfreeError


class _Group(click.Group):
    """A click group that reports cloudfree's own errors as one clear line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CloudfreeError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cloudfree")
def main() -> None:
    """cloudfree: remove clouds from Sentinel-2 imagery with Sentinel-1 SAR."""


def _register() -> None:
    from cloudfree.cli.cloudmask_cmd import cloudmask
    from cloudfree.cli.data_cmd import data
    from cloudfree.cli.demo_cmd import demo
    from cloudfree.cli.evaluate_cmd import evaluate
    from cloudfree.cli.models_cmd import models
    from cloudfree.cli.predict_cmd import predict
    from cloudfree.cli.report_cmd import report
    from cloudfree.cli.train_cmd import recipes, train

    for command in (cloudmask, data, demo, evaluate, models, predict, recipes, report, train):
        main.add_command(command)


_register()
