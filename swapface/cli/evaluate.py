"""`swapface eval`: score a swap (identity, expression, stability, seams) and a model on held-out faces."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from swapface.atomic import check_folder_writable
from swapface.cli.common import console, user_errors
from swapface.cli.face_options import BackendOption, DetectorOption, checked
from swapface.errors import SwapfaceError
from swapface.eval.evaluate import METRICS, EvalOptions, EvalResult, evaluate
from swapface.eval.heldout import DirectionScores, headline, held_out_scores
from swapface.eval.report import HTML_NAME, JSON_NAME, write_report
from swapface.faces import DEFAULT_BACKEND
from swapface.outputs import check_outputs

FACESET_OR_IMAGE = "a faceset, an image, or a folder of images"


def eval_command(
    output_dir: Annotated[Path, typer.Option(
        "--output-dir", "-o", help=f"Folder for {JSON_NAME} (all numbers) and {HTML_NAME} (plots, frames).")],
    source: Annotated[Path | None, typer.Option(help="The video, image or image folder that was swapped.")] = None,
    swapped: Annotated[Path | None, typer.Option(
        help="The swap result: same kind, size and frame count as --source.")] = None,
    target: Annotated[Path | None, typer.Option(help=f"Who the face should now be: {FACESET_OR_IMAGE}.")] = None,
    original: Annotated[Path | None, typer.Option(
        help=f"Who the face was: {FACESET_OR_IMAGE} (default: the source frames' own faces). Also picks the "
             "face to judge when a frame shows several.")] = None,
    model: Annotated[Path | None, typer.Option(
        "--model", "-m", help="Model dir to score on held-out faces (with --held-out-a/-b): reconstructions "
                              "A->A, B->B and, given both, swaps A->B, B->A.")] = None,
    held_out_a: Annotated[Path | None, typer.Option(help="Faceset of identity A not used in training.")] = None,
    held_out_b: Annotated[Path | None, typer.Option(help="Faceset of identity B not used in training.")] = None,
    max_faces: Annotated[int, typer.Option(help="Held-out faces to score per identity and direction.", min=1)] = 64,
    device: Annotated[str, typer.Option(help="Device for the model: auto (cuda if present), cpu, cuda, cuda:1 "
                                             "...")] = "auto",
    max_frames: Annotated[int | None, typer.Option(help="Score at most this many frames.", min=1)] = None,
    backend: BackendOption = DEFAULT_BACKEND,
    detector: DetectorOption = None,
    min_face: Annotated[int, typer.Option("--min-face", help="Smallest face to look for, in pixels.", min=8)] = 80,
    workers: Annotated[int, typer.Option(help="Face-analysis processes (default: one per CPU core).",
                                         min=1)] = os.cpu_count() or 1,
) -> None:
    """Score a swapped video against its source, and/or a model on held-out faces."""
    with user_errors():
        video_inputs = (source, swapped, target)
        if any(p is not None for p in video_inputs) and not all(p is not None for p in video_inputs):
            raise SwapfaceError("--source, --swapped and --target go together: give all three")
        held_out = {k: v for k, v in (("a", held_out_a), ("b", held_out_b)) if v is not None}
        if (model is None) != (not held_out):
            raise SwapfaceError("--model needs --held-out-a and/or --held-out-b, and they need --model")
        if source is None and model is None:
            raise SwapfaceError("nothing to evaluate: give --source/--swapped/--target, or --model with held-out "
                                "facesets")
        checked(backend, detector)
        check_outputs([source, swapped, target, original, model, held_out_a, held_out_b],
                      files=[output_dir / JSON_NAME, output_dir / HTML_NAME])
        check_folder_writable(output_dir)

        video = None
        if source is not None:
            options = EvalOptions(backend=backend, detector=detector, min_face=min_face, max_frames=max_frames,
                                  workers=workers)
            video = _evaluate_video(source, swapped, target, original, options)
        directions = None
        if model is not None:
            with console.status("scoring the model on held-out faces"):
                directions = held_out_scores(model, held_out, max_faces=max_faces, device=device)
        json_path, html_path = write_report(output_dir, video, directions)
        _summary(video, directions)
        console.print(f"wrote {json_path} and {html_path}")


def _evaluate_video(source: Path, swapped: Path, target: Path, original: Path | None,
                    options: EvalOptions) -> EvalResult:
    with Progress(TextColumn("[bold]eval[/]"), BarColumn(bar_width=None), MofNCompleteColumn(),
                  TextColumn("frames"), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("eval", total=None)

        def show(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        return evaluate(source, swapped, target, original, options, progress=show)


def _summary(video: EvalResult | None, directions: list[DirectionScores] | None) -> None:
    if video is not None:
        table = Table(title=f"{video.swapped}: {video.frames_with_face} of {len(video.frames)} frames with a face")
        for column in ("metric", "mean", "median", "worst 5%"):
            table.add_column(column)
        table.add_row("closer to target", f"{video.closer_to_target:.1%}", "", "")
        table.add_row("flicker ratio (1 = as steady as source)", f"{video.flicker_ratio:.3f}", "", "")
        table.add_row("sharpness vs source face (1 = as sharp)", f"{video.sharpness:.3f}", "", "")
        if video.expression is not None:
            e = video.expression
            table.add_row("expression: mouth r / eyes r / blinks / dynamic NME",
                          f"{e.correlation['mouth_open']:.2f} / {e.correlation['eye_left']:.2f}, "
                          f"{e.correlation['eye_right']:.2f} / {e.blink_agreement:.2f} / {e.dynamic_nme:.3f}", "", "")
        for m in METRICS:
            s = video.summaries[m.key]
            table.add_row(f"{m.label} ({m.unit})", f"{s.mean:.3f}", f"{s.median:.3f}", f"{s.worst5:.3f}")
        console.print(table)
    if directions:
        table = Table(title="model on held-out faces")
        for column in ("direction", "faces", "closer to target", "d(target)", "NME", "dynamic NME", "mouth r",
                       "eyes r", "blinks", "sharpness", "PSNR dB", "SSIM"):
            table.add_column(column)
        for scores in directions:
            summary = scores.summaries()
            h = headline(scores)
            quality = (f"{scores.pooled_psnr:.2f}", f"{summary['ssim'].mean:.3f}") if scores.is_reconstruction \
                else ("", "")
            table.add_row(scores.name, str(len(scores.nme)), f"{scores.closer_to_target:.1%}",
                          f"{summary['d_target'].mean:.3f}", f"{summary['nme'].mean:.3f}", f"{h['dyn_nme']:.3f}",
                          f"{h['mouth_corr']:.2f}", f"{h['eye_corr']:.2f}", f"{h['blink']:.2f}",
                          f"{h['sharpness']:.2f}", *quality)
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
