"""The --backend and --detector options that extract, swap and evaluate share (one list: faces.BACKENDS)."""

from __future__ import annotations

from typing import Annotated

import typer

from swapface.errors import SwapfaceError
from swapface.faces import BACKENDS, DEFAULT_BACKEND, check_backend

_DETECTORS = "; ".join(f"{name}: {', '.join(detectors)}" for name, detectors in BACKENDS.items())

BackendOption = Annotated[str, typer.Option(
    help=f"Face backend: {', '.join(BACKENDS)} (mediapipe: BlazeFace + 478-point mesh, Apache-2.0 models).")]
SwapBackendOption = Annotated[str | None, typer.Option(
    help=f"Face backend: {', '.join(BACKENDS)} (default: the one that made the model's facesets; another is "
         "refused, as its crops align differently).")]
DetectorOption = Annotated[str | None, typer.Option(
    help=f"Face detector of the backend ({_DETECTORS}; default: the first).")]


def checked(backend: str | None, detector: str | None) -> None:
    """One-line error for a backend or detector not in the list."""
    try:
        check_backend(backend or DEFAULT_BACKEND, detector)
    except ValueError as exc:
        raise SwapfaceError(str(exc)) from None
