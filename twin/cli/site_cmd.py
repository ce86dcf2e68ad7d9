"""`twin site ...`: list, show, validate and export the graphs of sites."""

from __future__ import annotations

import typer

from twin.cli import app

site_app = typer.Typer(no_args_is_help=True, help="Inspect and validate site definitions")
app.add_typer(site_app, name="site")


@site_app.command("list")
def list_sites() -> None:
    """Sites shipped in sites/."""
    from twin.site import site_names

    for name in site_names():
        typer.echo(name)
