"""`minerlens responder ...` commands (placeholder until the service lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="minerlens responder", no_args_is_help=True)
    app.add_typer(sub, name="responder")
