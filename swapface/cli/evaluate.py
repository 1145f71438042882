"""Placeholder until the evaluate stage lands: registers nothing."""

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's sub-command to the app."""
