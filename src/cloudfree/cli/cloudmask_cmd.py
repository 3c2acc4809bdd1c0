"""`cloudfree cloudmask` (being written)."""

import click


@click.command("cloudmask")
def cloudmask() -> None:
    """Not available yet."""
    raise click.ClickException("'cloudmask' is not available yet")
