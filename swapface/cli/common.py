"""Shared CLI plumbing: the one error boundary. Known failures become one red line and a non-zero exit,
never a traceback: user errors, file-system failures (disk full, no permission), damaged databases,
Ctrl-C and SIGTERM (which unwind like Ctrl-C, so temporary files are removed on the way out)."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import threading
import warnings
from collections.abc import Iterator

import typer
from rich.console import Console

from swapface.errors import MediaWarning, SwapfaceError

console = Console(stderr=True)

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every `finally` and context manager runs (a plain
    SIGTERM would end the process on the spot and leave temporaries behind)."""


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise Terminated()


def describe_os_error(exc: OSError) -> str:
    """One line for a file-system failure: the file (when known) and the system's reason."""
    reason = exc.strerror or str(exc) or exc.__class__.__name__
    files = [str(f) for f in (exc.filename, exc.filename2) if f]
    return f"{' -> '.join(files)}: {reason}" if files else f"cannot write or read a file: {reason}"


def _fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    message = " ".join(part.strip() for part in message.splitlines() if part.strip())  # one line, always
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Run a command's body inside the error boundary (see the module docstring); warnings about usable
    but imperfect footage (a damaged frame, a gap in a sequence) become one yellow line each."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)

    def show(message: Warning | str, category: type[Warning], *_: object) -> None:
        console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", MediaWarning)
            warnings.showwarning = show
            yield
    except SwapfaceError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:  # disk full, read-only or unwritable folders, files vanishing under us
        raise _fail(describe_os_error(exc)) from None
    except sqlite3.DatabaseError as exc:  # a database damaged in a way its first checks did not catch
        raise _fail(f"damaged database ({exc})") from None
    except MemoryError:
        raise _fail("out of memory: try a smaller --batch-size or fewer --workers") from None
    except Terminated:
        console.print("[yellow]terminated[/]")
        raise typer.Exit(EXIT_TERMINATED) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
