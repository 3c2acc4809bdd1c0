"""`cloudfree data ...` (being written)."""

import click


@click.group("data")
def data() -> None:
    """Dataset tools."""
