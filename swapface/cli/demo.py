"""`swapface demo`: the whole pipeline on public-domain photos bundled with installed packages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from swapface.cli.common import console, user_errors


def demo_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for clips, faces, model, swap, report.")
                      ] = Path("demo-output"),
    steps: Annotated[int, typer.Option(help="Training steps (fine-tuning the bundled demo model).", min=1)] = 150,
    frames: Annotated[int, typer.Option(help="Frames per demo clip.", min=8)] = 48,
    rebuild_model: Annotated[bool, typer.Option(
        "--rebuild-model", help="Train from scratch instead and write the result over the bundled demo model "
                                "(how it was made: --rebuild-model --steps 6000).")] = False,
) -> None:
    """Animate clips from the astronaut and Grace Hopper portraits, extract, train, swap A->B, evaluate."""
    from swapface.demo import run_demo  # heavy imports only when the demo runs

    with user_errors():
        result = run_demo(output, steps=steps, frames=frames, rebuild=rebuild_model,
                          say=lambda text: console.print(text, highlight=False))
    evaluation = result.evaluation
    table = Table(title="demo result", show_header=False)
    table.add_row("input clip", str(result.clip))
    table.add_row("swapped video", str(result.swapped))
    table.add_row("report", str(result.report))
    table.add_row("frames swapped", f"{result.swap.frames_swapped} of {result.swap.frames}")
    table.add_row("closer to Grace Hopper than to the astronaut", f"{evaluation.closer_to_target:.0%} of frames")
    table.add_row("sharpness (1 = as sharp as the source face)", f"{evaluation.sharpness:.2f}")
    for key in ("d_target", "d_original", "nme", "seam_colour"):
        summary = evaluation.summaries[key]
        table.add_row(f"{key} (mean / worst 5%)", f"{summary.mean:.3f} / {summary.worst5:.3f}")
    table.add_row("flicker ratio (1 = as steady as the input)", f"{evaluation.flicker_ratio:.2f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
