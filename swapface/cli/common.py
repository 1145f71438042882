"""Shared CLI plumbing: user errors become one red line and exit code 1, never a traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console

from swapface.errors import SwapfaceError

console = Console(stderr=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn SwapfaceError into a one-line message and exit 1; Ctrl-C into exit 130."""
    try:
        yield
    except SwapfaceError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
