"""`cloudfree demo` (being written)."""

import click


@click.command("demo")
@click.option("--out", default="demo_output")
def demo(out: str) -> None:
    """Run the demo."""
    raise click.ClickException("demo is not available yet")
