"""`cloudfree evaluate` (being written)."""

import click


@click.command("evaluate")
def evaluate() -> None:
    """Not available yet."""
    raise click.ClickException("'evaluate' is not available yet")
