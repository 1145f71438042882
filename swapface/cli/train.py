"""`swapface train`: train (or resume) a face-swap model on two facesets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from swapface.cli.common import console, user_errors
from swapface.model import PRESETS
from swapface.train.loop import Progress as TrainProgress
from swapface.train.loop import train
from swapface.train.options import TrainOptions

# Every option's default is the library's: one source, so the CLI trains what TrainOptions() trains.
DEFAULTS = TrainOptions()


def train_command(
    faceset_a: Annotated[Path, typer.Argument(help="Faceset of identity A.")],
    faceset_b: Annotated[Path, typer.Argument(help="Faceset of identity B (the same faceset as A, holding many "
                                                    "people, pretrains a base model for --init-from).")],
    model_dir: Annotated[Path, typer.Option("--model", "-m", help="Model folder to create, or to resume.")],
    preset: Annotated[str, typer.Option(help=f"Model size: {', '.join(PRESETS)}.")] = DEFAULTS.preset,
    resolution: Annotated[int | None, typer.Option(help="Face resolution in px (64-512), overriding the "
                                                        "preset's.")] = None,
    dense_dims: Annotated[int | None, typer.Option(help="A global (dense) bottleneck of this many numbers beside the "
                                                       "spatial latent, overriding the preset's (0: none); a "
                                                       "multiple of the latent's cells.", min=0)] = None,
    batch_size: Annotated[int, typer.Option(help="Faces per identity per step (per process under torchrun).",
                                            min=1)] = DEFAULTS.batch_size,
    steps: Annotated[int | None, typer.Option(help="Train until this total step; default: until Ctrl-C.",
                                              min=1)] = None,
    time_limit: Annotated[float | None, typer.Option(help="Minutes this run may train before it saves and "
                                                          "stops (rerun to go on).", min=0.01)] = None,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = DEFAULTS.lr,
    kl_weight: Annotated[float, typer.Option(help="Weight of the VAE's KL term.")] = DEFAULTS.kl_weight,
    gan_weight: Annotated[float, typer.Option(help="Weight of the PatchGAN loss (0: no discriminator).")] = (
        DEFAULTS.gan_weight),
    save_every: Annotated[int, typer.Option(help="Checkpoint every N steps.", min=1)] = DEFAULTS.save_every,
    snapshot_every: Annotated[int, typer.Option(help="Keep a copy of the weights every N steps (0: never).",
                                                min=0)] = DEFAULTS.snapshot_every,
    preview_every: Annotated[int, typer.Option(help="Write a preview grid PNG every N steps.", min=1)] = (
        DEFAULTS.preview_every),
    log_every: Annotated[int, typer.Option(help="Log losses every N steps.", min=1)] = DEFAULTS.log_every,
    eval_every: Annotated[int, typer.Option(help="Score held-out faces every N steps (0: never).", min=0)] = (
        DEFAULTS.eval_every),
    holdout: Annotated[float, typer.Option(help="Fraction of each faceset (its last faces) held out for "
                                                "--eval-every.")] = DEFAULTS.holdout,
    init_from: Annotated[Path | None, typer.Option(help="Start from this model's weights (same preset).")] = None,
    freeze: Annotated[list[str] | None, typer.Option(help="Freeze a part: encoder.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (default: cuda if present).")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32 or bf16 (default: bf16 on GPU, fp32 on CPU).")]
    = None,
    compile: Annotated[bool, typer.Option("--compile/--no-compile", help="torch.compile the model.")] = (
        DEFAULTS.compile),
    seed: Annotated[int, typer.Option(help="Seed of weights, data order and augmentation.")] = DEFAULTS.seed,
    ema: Annotated[float, typer.Option(help="Decay of the weight average written to the model dir (0: raw "
                                            "weights).")] = DEFAULTS.ema,
    priority_weight: Annotated[float, typer.Option(help="Loss weight of the eyes and mouth, against 1 for the rest "
                                                        "of the face (DeepFaceLab's eyes and mouth priority).",
                                                   min=1)] = DEFAULTS.priority_weight,
    expression_weight: Annotated[float, typer.Option(help="Weight of the expression loss on swaps (a landmark "
                                                          "regressor trained alongside reads them; 0: off).",
                                                     min=0)] = DEFAULTS.expression_weight,
    cycle_weight: Annotated[float, typer.Option(help="Weight of the cycle loss (A->B->A gives A back; 0: off).",
                                                min=0)] = DEFAULTS.cycle_weight,
    late_phase: Annotated[float, typer.Option(help="Share of the run, at its end, trained without random warp "
                                                   "(placed by --steps or --time-limit; without either, and when "
                                                   "pretraining a base, there is none; 0: off).",
                                              min=0, max=0.99)] = DEFAULTS.late_phase,
    late_gan_weight: Annotated[float, typer.Option(help="PatchGAN weight in the late phase (0: none).", min=0)] = (
        DEFAULTS.late_gan_weight),
    lr_dropout: Annotated[float, typer.Option(help="Share of weight updates dropped at random each step.",
                                              min=0, max=0.99)] = DEFAULTS.lr_dropout,
    lr_decay: Annotated[float, typer.Option(help="Share of the run, at its end, over which the learning rate falls "
                                                 "to zero along a cosine (needs --steps or --time-limit; 0: off).",
                                            min=0, max=1)] = DEFAULTS.lr_decay,
    anchor_weight: Annotated[float, typer.Option(help="Pull the weights back toward --init-from's each step (L2-SP): "
                                                      "each drifts about 1/weight from the base (0: off).",
                                                 min=0)] = DEFAULTS.anchor_weight,
    swap_gan_weight: Annotated[float, typer.Option(help="Weight of a PatchGAN, one head per identity, that also "
                                                        "judges each swap as a face of its target (0: off).",
                                                   min=0)] = DEFAULTS.swap_gan_weight,
    code_gan_weight: Annotated[float, typer.Option(help="Weight of a discriminator that tells A's latent codes from "
                                                        "B's, which the encoder learns to fool, so swaps look more "
                                                        "like their target (0: off; off when pretraining).",
                                                   min=0)] = DEFAULTS.code_gan_weight,
    color_transfer: Annotated[float, typer.Option(help="Chance that a face trains in the colours of a face of the "
                                                       "other identity, so each decoder learns to draw in the "
                                                       "other's light (0: off).", min=0, max=1)] = (
        DEFAULTS.color_transfer),
) -> None:
    """Train a model that swaps A's and B's faces; rerun the same command to resume. Under
    `torchrun --nproc_per_node=N` it trains data-parallel."""
    with user_errors():
        options = TrainOptions(
            preset=preset, resolution=resolution, dense_dims=dense_dims, batch_size=batch_size, steps=steps,
            time_limit=None if time_limit is None else time_limit * 60, lr=lr, kl_weight=kl_weight,
            gan_weight=gan_weight, save_every=save_every, snapshot_every=snapshot_every,
            preview_every=preview_every, log_every=log_every, eval_every=eval_every, holdout=holdout,
            init_from=init_from, freeze=tuple(freeze or ()), device=device, precision=precision, compile=compile,
            seed=seed, ema=ema, priority_weight=priority_weight, expression_weight=expression_weight,
            cycle_weight=cycle_weight, late_phase=late_phase, late_gan_weight=late_gan_weight, lr_dropout=lr_dropout,
            lr_decay=lr_decay, anchor_weight=anchor_weight, swap_gan_weight=swap_gan_weight,
            code_gan_weight=code_gan_weight, color_transfer=color_transfer)
        with Progress(TextColumn("[bold]train[/]"), BarColumn(bar_width=None), MofNCompleteColumn(),
                      TextColumn("{task.fields[losses]}"), TimeElapsedColumn(), console=console,
                      transient=True) as bar:
            task = bar.add_task("train", total=steps, losses="")

            def show(progress: TrainProgress) -> None:
                m = progress.metrics
                text = (f"loss {m['loss']:.4f} (l1 {m['l1']:.4f} ssim {m['ssim']:.4f} mask {m['mask']:.4f} "
                        f"kl {m['kl']:.3f}) {m['img_per_s']:.0f} img/s")
                bar.update(task, completed=progress.step, losses=text)

            result = train(faceset_a, faceset_b, model_dir, options, progress=show,
                           message=lambda text: console.print(text, highlight=False, soft_wrap=True))
        if result.interrupted:
            raise typer.Exit(130)
        if result.main_process:
            console.print(f"trained to step {result.step}: model in {model_dir}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
