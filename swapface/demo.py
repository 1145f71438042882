"""The demo: the whole pipeline on public-domain photos that ship with installed packages.

Clips are animated from the portraits of astronaut Eileen Collins (A) and Grace Hopper (B); their faces
are extracted, the bundled demo model is fine-tuned on them briefly (or trained from scratch with
`rebuild=True`, which is how the bundled model was made), the astronaut clip is swapped to Grace
Hopper's face, and the swap is evaluated.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from swapface.demo_clips import make_demo_clips
from swapface.devices import cpu_has_fast_bf16
from swapface.eval.evaluate import EvalOptions, EvalResult, evaluate
from swapface.eval.report import write_report
from swapface.faces import AlignSpec
from swapface.faceset.extract import ExtractOptions, extract
from swapface.modeldir import load_model, read_config_json, save_model
from swapface.swap.options import SwapOptions
from swapface.swap.pipeline import SwapStats, swap_media
from swapface.train.loop import TrainResult, train
from swapface.train.options import CLASSIC_RESAMPLE, CLASSIC_WARP, AugmentOptions, TrainOptions

DEMO_MODEL = "demo_model"  # folder inside swapface/assets holding the bundled model (config + weights)
FACE_SIZE = 128
PRESET = "small"


@dataclass
class DemoResult:
    clip: Path
    swapped: Path
    report: Path
    training: TrainResult
    swap: SwapStats
    evaluation: EvalResult


# How the demo swaps (measured in docs/benchmarks.md, "Light matching" and the demo table):
SHARPEN = 0.5  # the merger's unsharp mask: the 128 px model's face is softer than the footage it goes into;
#               since the fine-tune's targets keep their detail (bicubic augmentation), 0.5 gives what 1 did
COLOR = "light"  # the astronaut is lit from one side; Reinhard alone leaves Hopper's cheek 10 levels off
ERODE = 2.0  # half the default erosion: more of the generated face shows (closer to Hopper), the light
#              transfer keeps the wider seam from showing


def bundled_model() -> Path:
    """The demo model that ships inside the package."""
    return Path(str(resources.files("swapface") / "assets" / DEMO_MODEL))


def run_demo(output: Path, steps: int = 150, frames: int = 48, rebuild: bool = False,
             say: Callable[[str], None] = print) -> DemoResult:
    """Run the demo into `output`; with `rebuild`, train from scratch for `steps` and refresh the bundled
    model instead of fine-tuning it."""
    output.mkdir(parents=True, exist_ok=True)
    say("1/4 making demo clips from the bundled public-domain portraits")
    clips = make_demo_clips(output / "clips", frames)
    say("2/4 extracting faces")
    facesets = {}
    for name, clip in clips.items():
        facesets[name] = output / "faces" / name
        if facesets[name].exists():
            shutil.rmtree(facesets[name])
        extract([clip], facesets[name], ExtractOptions(spec=AlignSpec(FACE_SIZE, "whole")))
    model_dir = output / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    init = None if rebuild else bundled_model()
    say(f"3/4 training {'from scratch' if rebuild else 'from the bundled demo model'} for {steps} steps")
    # A rebuild ends DeepFaceLab's way: the last fifth without random warp and with the PatchGAN, for detail.
    # A fine-tune starts where that phase ended: random warp again would blur what it sharpened.
    options = TrainOptions(preset=PRESET, batch_size=8, steps=steps, init_from=init,
                           precision="bf16" if cpu_has_fast_bf16() else None,
                           late_phase=0.2 if rebuild else 0.0, late_gan_weight=0.1,
                           augment=AugmentOptions(warp=CLASSIC_WARP, resample=CLASSIC_RESAMPLE) if rebuild  # the
                           else AugmentOptions(warp=0.0),  # bundled model's recipe; a fine-tune without warp
                           preview_every=max(steps // 4, 1), save_every=max(steps // 2, 1), snapshot_every=0)
    training = train(facesets["astronaut"], facesets["grace_hopper"], model_dir, options, message=say)
    if rebuild:
        model, _ = load_model(model_dir)
        save_model(bundled_model(), model.half(),  # fp16 halves the package; loading widens it again
                   {"made_by": f"swapface demo --rebuild-model --steps {steps}",
                    "faces": read_config_json(model_dir)["training"].get("faces")})
    say("4/4 swapping the astronaut's face for Grace Hopper's, then evaluating")
    swapped = output / "swapped.mp4"
    how = SwapOptions(direction="a2b", sharpen=SHARPEN, color=COLOR, erode=ERODE)
    stats = swap_media(clips["astronaut"], model_dir, swapped, how)
    evaluation = evaluate(clips["astronaut"], swapped, facesets["grace_hopper"], facesets["astronaut"],
                          EvalOptions())
    _, report = write_report(output / "report", evaluation, None)
    return DemoResult(clips["astronaut"], swapped, report, training, stats, evaluation)
