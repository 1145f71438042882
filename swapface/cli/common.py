"""Shared CLI plumbing: user errors become one red line and exit code 1, never a traceback."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import typer
from rich.console import Console

from swapface.errors import MediaWarning, SwapfaceError

console = Console(stderr=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn SwapfaceError into a one-line message and exit 1; Ctrl-C into exit 130; warnings (damaged
    frames, say) into one yellow line each."""
    def show(message: Warning | str, category: type[Warning], *_: object) -> None:
        console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", MediaWarning)
            warnings.showwarning = show
            yield
    except SwapfaceError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
