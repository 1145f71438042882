"""`swapface extract`: build a faceset from videos, images or image folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from swapface.cli.common import console, user_errors
from swapface.cli.face_options import BackendOption, DetectorOption, checked
from swapface.faces import AlignSpec
from swapface.faces.align import COVERAGES
from swapface.faceset.extract import ExtractOptions, ExtractStats, extract, reference_embedding
from swapface.media.sequences import colour_summary

# Every option's default is the library's (one source); --workers alone differs: the CLI uses every core.
DEFAULTS = ExtractOptions()


def extract_command(
    inputs: Annotated[list[Path], typer.Argument(
        help="Videos, images, folders of images, or image sequences (plate.%04d.exr, plate.####.dpx).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Faceset folder to create or resume.")],
    size: Annotated[int, typer.Option(help="Side of the aligned face crops in pixels (64-1024).")] = DEFAULTS.spec.size,
    coverage: Annotated[str, typer.Option(
        help=f"How much of the head a crop shows: {', '.join(COVERAGES)} (tight face, whole face "
             "with forehead, whole head).")] = DEFAULTS.spec.coverage,
    every: Annotated[int, typer.Option(help="Analyse every Nth frame.", min=1)] = DEFAULTS.every,
    min_face: Annotated[int, typer.Option(
        "--min-face", help="Smallest face to keep, in pixels; smaller values also make the detector "
                           "look harder (and slower) for small faces.", min=8)] = (
        DEFAULTS.min_face),
    backend: BackendOption = DEFAULTS.backend,
    detector: DetectorOption = None,
    min_score: Annotated[float | None, typer.Option(
        help="Smallest detector confidence to accept (lower finds harder faces and more false ones; default: "
             "the backend's).")] = None,
    reference: Annotated[Path | None, typer.Option(
        help="Keep only this person: an image of them, a folder of images, or a faceset.")] = None,
    max_distance: Annotated[float, typer.Option(
        help="Largest identity distance to the reference that still counts as the same person.")] = (
        DEFAULTS.max_distance),
    min_sharpness: Annotated[float, typer.Option(
        help="Drop faces whose sharpness (Laplacian variance at 128 px) is lower.")] = DEFAULTS.min_sharpness,
    dedupe: Annotated[bool, typer.Option(
        "--dedupe/--no-dedupe", help="Drop faces that barely changed since the previous kept frame.")] = (
        DEFAULTS.dedupe),
    workers: Annotated[int, typer.Option(help="Analysis processes (default: one per CPU core).",
                                         min=1)] = os.cpu_count() or 1,
    max_frames: Annotated[int | None, typer.Option(help="Read at most this many frames of each input.",
                                                   min=1)] = None,
    colorspace: Annotated[str | None, typer.Option(
        help="OCIO colour space of image sequence inputs (as for swap); faces are saved in sRGB.")] = None,
) -> None:
    """Detect, align and save the faces of INPUTS into a faceset (resumes an interrupted run)."""
    with user_errors():
        try:
            spec = AlignSpec(size, coverage)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        checked(backend, detector)
        target = reference_embedding(reference) if reference is not None else None
        options = ExtractOptions(spec=spec, every=every, min_face=min_face, backend=backend, detector=detector,
                                 min_score=min_score, reference=target, max_distance=max_distance,
                                 min_sharpness=min_sharpness, dedupe=dedupe, workers=workers, max_frames=max_frames,
                                 colorspace=colorspace)
        colour = "; ".join(sorted({colour_summary(path, colorspace) for path in inputs}))
        with Progress(TextColumn("[bold]extract[/]"), BarColumn(bar_width=None),
                      TextColumn("{task.fields[frames]} frames, {task.fields[found]} faces found, "
                                 "{task.fields[kept]} kept, "
                                 "{task.fields[rate]:.1f} frames/s"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("extract", total=None, frames=0, found=0, kept=0, rate=0.0)

            def show(stats: ExtractStats) -> None:
                bar.update(task, total=stats.frames_total, completed=stats.frames_read, frames=stats.frames_read,
                           found=stats.faces_found, kept=stats.faces_kept, rate=stats.rate)

            stats = extract(inputs, output, options, progress=show)
        _summary(stats, output, colour)


def _summary(stats: ExtractStats, output: Path, colour: str) -> None:
    table = Table(title=f"faceset {output}", show_header=False)
    table.add_row("colour", colour)
    table.add_row("frames read", str(stats.frames_read))
    if stats.frames_resumed:
        table.add_row("frames already done (resumed)", str(stats.frames_resumed))
    table.add_row("frames analysed", str(stats.frames_analysed))
    table.add_row("faces found", str(stats.faces_found))
    table.add_row("faces kept", str(stats.faces_kept))
    for reason, count in sorted(stats.rejected.items()):
        table.add_row(f"rejected: {reason}", str(count))
    table.add_row("time", f"{stats.seconds:.1f} s ({stats.rate:.1f} frames/s)")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("extract")(extract_command)
