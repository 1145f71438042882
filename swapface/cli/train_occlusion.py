"""`swapface train-occlusion`: retrain the occlusion mask network that ships with the package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from swapface.cli.common import console, user_errors
from swapface.faces.occlusion import WEIGHTS
from swapface.train.occlusion import OcclusionTrainOptions, train_occlusion
from swapface.train.options import TRAIN_PRECISIONS


def train_occlusion_command(
    clips: Annotated[list[Path], typer.Argument(help="Videos or images of faces to train on.")],
    val: Annotated[list[Path], typer.Option(help="Clips kept apart to score and pick the weights.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Weights file to write (safetensors).")] = WEIGHTS,
    minutes: Annotated[float, typer.Option(help="Training time.", min=0.1)] = 30.0,
    every: Annotated[int, typer.Option(help="Use every Nth frame of the clips.", min=1)] = 8,
    per_clip: Annotated[int, typer.Option(help="Faces per clip at most.", min=1)] = 40,
    threads: Annotated[int, typer.Option(help="CPU threads for torch.", min=1)] = 1,
    seed: Annotated[int, typer.Option(help="Random seed (faces, occluders, weights).")] = 0,
    init: Annotated[Path | None, typer.Option(help="Start from these weights (e.g. the shipped ones).")] = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate (decays to 0 over the time budget).")] = 2e-3,
    precision: Annotated[str, typer.Option(help="fp32, or bf16 (autocast: faster on CPUs with AMX).")] = "fp32",
) -> None:
    """Train the occlusion mask (which pixels of a face crop are visible face) on the faces of CLIPS with
    synthetic occluders; keeps the weights that score best on the --val clips."""
    with user_errors():
        torch.set_num_threads(threads)
        if precision not in TRAIN_PRECISIONS:
            raise typer.BadParameter(f"must be {' or '.join(TRAIN_PRECISIONS)}, got {precision!r}",
                                     param_hint="--precision")
        options = OcclusionTrainOptions(every=every, per_clip=per_clip, minutes=minutes, seed=seed, init=init, lr=lr,
                                        precision=precision)
        best = train_occlusion(clips, val, output, options, progress=lambda line: console.print(line, highlight=False))
        console.print(f"wrote {output}: held-out occluded IoU {best['iou']:.3f}, visible IoU "
                      f"{best['visible_iou']:.3f} (step {best.get('step')})")


def register(app: typer.Typer) -> None:
    app.command("train-occlusion")(train_occlusion_command)
