"""``pacer-stream schemas export``: write (or check) the generated topic schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``schemas`` command group to ``app``."""
    group = typer.Typer(help="JSON Schemas of the topics, generated from the wire models.")
    app.add_typer(group, name="schemas")

    @group.command("export")
    def export(
        out: Annotated[
            Path | None,
            typer.Option(help="folder to write into (default: the repository's topics/schemas)"),
        ] = None,
        check: Annotated[
            bool,
            typer.Option("--check", help="write nothing; exit 1 if a committed file is stale"),
        ] = False,
    ) -> None:
        """Generate ``<topic>.json`` for every topic from the wire models."""
        from pacer_stream.wire import schemas

        if check:
            outdated = schemas.stale(out)
            for topic in outdated:
                typer.echo(f"stale: {topic} (run: pacer-stream schemas export)")
            raise typer.Exit(1 if outdated else 0)
        for path in schemas.export(out):
            typer.echo(str(path))
