"""The swap-quality protocol of ../shared/notes/quality-protocol.md, end to end, in one command.

lp_d6 (identity A) and lp_d9 (identity B) are extracted whole; each clip's first 80% of frames trains
the model for a fixed wall-clock budget, its last 20% are held out. The held-out A faces are swapped
to B and both identities are reconstructed; the table gives what the protocol asks for (closer-to-target
share, identity distances to the mean embedding of each identity's *training* faces, landmark NME
against the source face, reconstruction PSNR), next to the classic method's numbers and our targets.

    python bench/quality.py --device cuda --minutes 10                      # the protocol (H100/H200)
    python bench/quality.py --device cpu --resolution 64 --batch-size 8 --minutes 50   # CPU proxy (issue 11)
    python bench/quality.py ... --model classic      # the classic autoencoder, same data, same budget
    python bench/quality.py ... --model blurred --blur 1.0   # no model: real faces blurred, the scorer's floor
    python bench/quality.py ... --clips lp_d6.mp4 lp_d10.mp4 --work ../quality-other   # another pair
    python bench/quality.py ... --score-only --outputs-to OUT   # save a trained model's held-out outputs
    python bench/quality.py ... --score-outputs OUT --color reinhard  # score them, swaps recoloured first
    python bench/quality.py ... --score-outputs OUT --sharpen 1  # the swaps unsharp-masked first (swap --sharpen)

Extraction and the train/held-out split are cached in --work (default: a folder next to this repo),
so a rerun only trains and scores; --fresh starts the model over.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from classic import ClassicAutoencoder, baseline_step
from rich.console import Console
from rich.table import Table

from swapface.errors import InputError, SwapfaceError
from swapface.eval.heldout import (
    DirectionScores,
    HeldOutFaces,
    headline,
    held_out_faces,
    held_out_scores,
    run_model,
    score_direction,
    score_model,
    scoring_backend,
)
from swapface.eval.metrics import psnr, sharpness_ratio
from swapface.faces import AlignSpec
from swapface.faces.masks import hull_mask
from swapface.faceset.store import Faceset
from swapface.model import PRESETS, preset
from swapface.modeldir import load_model, read_config_json
from swapface.swap.color import COLOR_MODES, transfer_color
from swapface.swap.masks import crop_pixels
from swapface.swap.sharpen import SHARPEN_RADIUS, sharpen
from swapface.train import distributed
from swapface.train.loop import FREEZABLE, Trainer, train
from swapface.train.options import CLASSIC_RESAMPLE, CLASSIC_WARP, RESAMPLE_MODES, TRAIN_PRECISIONS, TrainOptions

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
CLIPS = {"a": "lp_d6.mp4", "b": "lp_d9.mp4"}
TRAIN_SHARE = 0.8
# The protocol's reference run and targets (quality-protocol.md).
CLASSIC = {"a->b": (1.00, 0.311, 0.824, 0.122), "a->a": (1.00, 0.356, 0.851, 0.053),
           "b->b": (1.00, 0.294, 0.863, 0.033)}
CLASSIC_PSNR = {"a": 22.5, "b": 23.4}
# table column -> (headline key, format); the first column is the direction
COLUMNS = {"set": ("", ""), "closer": ("closer", ".0%"), "d(target)": ("d_target", ".3f"),
           "d(other)": ("d_other", ".3f"), "NME": ("nme", ".3f"), "dyn NME": ("dyn_nme", ".3f"),
           "mouth r": ("mouth_corr", ".2f"), "eyes r": ("eye_corr", ".2f"), "brows r": ("brow_corr", ".2f"),
           "blinks": ("blink", ".2f"), "sharp": ("sharpness", ".2f"), "dL": ("light_brightness", ".1f"),
           "d(ab)": ("light_colour", ".1f"), "PSNR dB": ("psnr", ".1f")}
LEVERS = ("priority_weight", "expression_weight", "cycle_weight", "late_phase", "late_gan_weight", "lr_dropout",
          "lr_decay", "gan_weight", "anchor_weight", "kl_weight", "swap_gan_weight", "code_gan_weight",
          "color_transfer")
TARGETS = "closer-to-target >= 99%, NME <= 0.06, reconstruction PSNR >= 28 dB (128 px), <= 10 GPU-minutes"


def split_faceset(full: Path, train_path: Path, held_path: Path, cut: int) -> None:
    """Faces of frames < `cut` to `train_path`, the rest to `held_path` (each written once, then reused)."""
    if (train_path / "faceset.sqlite").is_file() and (held_path / "faceset.sqlite").is_file():
        return
    with Faceset.open(full) as source:
        records = source.records()
        for path, keep in ((train_path, lambda r: r.frame < cut), (held_path, lambda r: r.frame >= cut)):
            shutil.rmtree(path, ignore_errors=True)
            with Faceset.create(path, source.spec) as part:
                for record in filter(keep, records):
                    part.commit_frames(record.source, [(record, source.load_image(record))], record.frame + 1)


def prepare(work: Path, workers: int, clips: dict[str, str]) -> dict[str, tuple[Path, Path]]:
    """(training faceset, held-out faceset) per identity, extracted and split on first use."""
    from swapface.faceset.extract import ExtractOptions, count_frames, extract  # dlib: not on a bare GPU machine

    facesets = {}
    for identity, clip in clips.items():
        video = VIDEOS / clip
        frames = count_frames([video])
        cut = math.floor(TRAIN_SHARE * frames)
        full = work / f"{identity}-full"
        if (full / "faceset.sqlite").is_file():
            with Faceset.open(full) as cached:
                held = Path(cached.records()[0].source).name
            if held != clip:
                sys.exit(f"{full}: holds faces of {held}, not {clip}; use another --work for another pair")
        extract([video], full, ExtractOptions(spec=AlignSpec(256, "whole"), workers=workers))
        facesets[identity] = (work / f"{identity}-train", work / f"{identity}-held")
        split_faceset(full, *facesets[identity], cut)
        with Faceset.open(facesets[identity][0]) as t, Faceset.open(facesets[identity][1]) as h:
            print(f"{clip}: {frames} frames; train on frames 0-{cut - 1} ({len(t)} faces), "
                  f"hold out {cut}-{frames - 1} ({len(h)} faces)")
    return facesets


def swapface_run(train_sets: dict[str, Path], held: dict[str, Path], args: argparse.Namespace,
                 options: TrainOptions, references: dict[str, np.ndarray]) -> tuple[int, list[DirectionScores]]:
    """Our model, trained by `swapface train`'s own loop (resumable: a rerun trains on)."""
    model_dir = args.model_dir or args.work / f"model-{args.preset}-{args.resolution or 'preset'}"
    if args.fresh:
        shutil.rmtree(model_dir, ignore_errors=True)
    if args.score_only:
        step = read_config_json(model_dir)["training"].get("step", 0)
    else:
        step = train(train_sets["a"], train_sets["b"], model_dir, options, message=print).step
    if args.outputs_to:
        write_outputs(model_dir, held, args, step)
        raise SystemExit(0)
    return step, held_out_scores(model_dir, held, max_faces=args.max_faces, device=args.device,
                                        references=references)


def write_outputs(model_dir: Path, held: dict[str, Path], args: argparse.Namespace, step: int) -> None:
    """On a machine without the face backends (bench/gpu.sh: torch, numpy and OpenCV only): run the model on the
    held-out crops, save the outputs for `--score-outputs` where the backends are (the one scorer,
    eval.heldout.scoring_backend), and print what needs no face analysis (PSNR, sharpness)."""
    model, config = load_model(model_dir, args.device)
    faces = {k: held_out_faces(p, k, config.resolution, config.coverage, args.max_faces) for k, p in held.items()}
    arrays, lines = {}, []
    for source, identity_faces in faces.items():
        for to, real in faces.items():
            out = run_model(model, identity_faces.crops, to, 64, args.device)
            arrays[f"{source}2{to}"] = out
            masks = [hull_mask(p, out.shape[1:3]) for p in identity_faces.crop_landmarks]
            real_masks = [hull_mask(p, out.shape[1:3]) for p in real.crop_landmarks]
            sharp = sharpness_ratio(list(out), masks, list(real.crops), real_masks)
            quality = f", PSNR {psnr(out, identity_faces.crops):.2f} dB" if source == to else ""
            lines.append(f"{source}->{to}: sharpness {sharp:.2f}{quality}")
    # One file per direction: the device tool brings back files of at most 16 MiB each.
    args.outputs_to.mkdir(parents=True, exist_ok=True)
    for name, out in arrays.items():
        np.savez_compressed(args.outputs_to / f"{name}.npz", outputs=out)
    (args.outputs_to / "meta.json").write_text(json.dumps({
        "steps": step, "resolution": config.resolution, "coverage": config.coverage, "max_faces": args.max_faces,
        "batch_size": args.batch_size, "minutes": args.minutes, "device": device_name(args.device)}))
    print(f"{step} steps; " + "; ".join(lines) + f"; outputs in {args.outputs_to}: score them where the face backends "
          "are (python bench/quality.py --score-outputs FOLDER --facesets-from CARRY/facesets)")


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"


def score_outputs(held: dict[str, Path], args: argparse.Namespace,
                  references: dict[str, np.ndarray]) -> tuple[int, list[DirectionScores]]:
    """Score outputs that `--outputs-to` saved on another machine, by the same scorer."""
    meta_path = args.score_outputs / "meta.json"
    if not meta_path.is_file():
        raise InputError(args.score_outputs, "no meta.json: unpack heldout.tar.* first, or point at a folder "
                                             "that --outputs-to wrote")
    meta = json.loads(meta_path.read_text())
    # The table's title names the run that made the outputs, not this machine.
    args.minutes, args.batch_size, args.resolution = meta["minutes"], meta["batch_size"], meta["resolution"]
    args.device = meta.get("device", "another machine")
    faces = {k: held_out_faces(p, k, meta["resolution"], meta["coverage"], meta["max_faces"]) for k, p in held.items()}
    backend = scoring_backend()
    saved = {(source, to): args.score_outputs / f"{source}2{to}.npz" for source in faces for to in faces}
    missing = [path.name for path in saved.values() if not path.is_file()]
    if missing:  # a transfer that lost a file still scores the directions that came back
        print(f"{args.score_outputs}: no {', '.join(missing)}; scoring the other directions")
    outputs = {pair: np.load(path)["outputs"] for pair, path in saved.items() if path.is_file()}
    # Reconstructions stay as made; swaps are scored as `swapface swap` pastes them.
    outputs = {(source, to): out if source == to else as_pasted(out, faces[source], args.sharpen, args.color)
               for (source, to), out in outputs.items()}
    if args.preview:
        write_preview(args.preview, faces, outputs)
    return meta["steps"], [score_direction(None, faces[source], to, references, backend, real_faces=faces[to],
                                           outputs=out) for (source, to), out in outputs.items()]


def as_pasted(swaps: np.ndarray, sources: HeldOutFaces, amount: float, mode: str) -> np.ndarray:
    """Each swap as `swapface swap --sharpen AMOUNT --color MODE` treats it before the paste: unsharp-masked, then
    recoloured toward its source crop inside the source's landmark hull (swap/sharpen.py, swap/color.py)."""
    sigma = crop_pixels(SHARPEN_RADIUS, swaps.shape[1])
    return np.stack([transfer_color(sharpen(swap, amount, sigma), crop, hull_mask(points, swap.shape[:2]), mode)
                     for swap, crop, points in zip(swaps, sources.crops, sources.crop_landmarks, strict=True)])


def write_preview(path: Path, faces: dict[str, HeldOutFaces], outputs: dict[tuple[str, str], np.ndarray],
                  count: int = 6) -> None:
    """A grid to look at: per direction, held-out sources above what the model made of them. The numbers
    alone have passed broken swaps (a GAN's ghosted features scored sharper, with a better NME)."""
    rows = []
    for (source, _to), out in outputs.items():
        picks = np.linspace(0, len(out) - 1, count).round().astype(int)
        rows += [np.concatenate(faces[source].crops[picks], 1), np.concatenate(out[picks], 1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(rows, 0)[..., ::-1])  # RGB -> OpenCV's BGR
    print(f"preview: {path} (real people: look at it here, never publish it)")


def classic_run(train_sets: dict[str, Path], held: dict[str, Path], args: argparse.Namespace,
                options: TrainOptions, references: dict[str, np.ndarray]) -> tuple[int, list[DirectionScores]]:
    """The classic autoencoder (L1 + MSE, Adam 5e-5), on the same batches and augmentation, same budget; random
    warp throughout, as the classic method trains (its amplitude and linear resampling, no late phase)."""
    classic_augment = dataclasses.replace(options.augment, warp=CLASSIC_WARP, resample=CLASSIC_RESAMPLE)
    options = dataclasses.replace(options, late_phase=0.0, augment=classic_augment)
    trainer = Trainer(train_sets["a"], train_sets["b"], args.work / "classic-data", options,
                      distributed.setup(args.device), message=lambda _t: None)
    torch.manual_seed(0)
    model = ClassicAutoencoder(trainer.config.resolution).to(trainer.device)
    dtype = torch.bfloat16 if args.precision == "bf16" else None
    step = baseline_step(trainer, model, torch.optim.Adam(model.parameters(), 5e-5, betas=(0.5, 0.999)), dtype)
    steps, deadline = 0, time.perf_counter() + options.time_limit
    while time.perf_counter() < deadline and (args.steps is None or steps < args.steps):
        loss = step()
        steps += 1
        if steps % 100 == 0:
            print(f"classic step {steps}: loss {loss.item():.4f}", flush=True)
    model.eval()
    with torch.no_grad():
        return steps, score_model(model, trainer.config.resolution, trainer.config.coverage, held,
                                  max_faces=args.max_faces, device=args.device, references=references)


def blurred_run(train_sets: dict[str, Path], held: dict[str, Path], args: argparse.Namespace,
                options: TrainOptions, references: dict[str, np.ndarray]) -> tuple[int, list[DirectionScores]]:
    """No model: each held-out face, Gaussian-blurred by --blur px, stands for its own reconstruction. What the
    scorer reads on real faces as soft as a model's output (sharpness, NME, expression, PSNR) is the floor under a
    model's numbers: a model's gap to it is the model's own error, not the blur's or the landmark fit's."""
    config = preset(args.preset, args.resolution)
    faces = {k: held_out_faces(p, k, config.resolution, config.coverage, args.max_faces) for k, p in held.items()}
    backend = scoring_backend()
    return 0, [score_direction(None, f, k, references, backend, real_faces=f,
                               outputs=np.stack([cv2.GaussianBlur(c, (0, 0), args.blur) for c in f.crops]))
               for k, f in faces.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="bf16", choices=TRAIN_PRECISIONS)
    parser.add_argument("--preset", default="128")
    parser.add_argument("--resolution", type=int, default=None, help="override the preset's (e.g. 64 on CPU)")
    parser.add_argument("--latent-side", type=int,
                        help="override the preset's 8 (e.g. 4: the 4x4 latent the 128 preset had at 64 px before)")
    parser.add_argument("--latent-channels", type=int, help="override the preset's")
    parser.add_argument("--dense-dims", type=int, help="override the preset's: a global bottleneck beside the latent")
    for lever in LEVERS:
        parser.add_argument("--" + lever.replace("_", "-"), type=float, help="TrainOptions." + lever)
    parser.add_argument("--warp", type=float, help="AugmentOptions.warp: the random warp's amplitude (grid units)")
    parser.add_argument("--resample", choices=RESAMPLE_MODES, help="AugmentOptions.resample: how faces are moved")
    parser.add_argument("--batch-size", type=int, default=64, help="faces per identity per step")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget, wall clock")
    parser.add_argument("--steps", type=int, help="also stop at this many steps (fair comparisons on a shared CPU)")
    parser.add_argument("--model-dir", type=Path, help="where our model trains (default: in --work, named by preset)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--max-faces", type=int, default=256, help="held-out faces scored per identity")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="extraction processes")
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parents[2] / "quality-work")
    parser.add_argument("--fresh", action="store_true", help="delete the model and train from scratch")
    parser.add_argument("--init-from", type=Path, help="start from this model dir's weights (same architecture)")
    parser.add_argument("--freeze", choices=FREEZABLE, action="append", help="TrainOptions.freeze (with --init-from)")
    parser.add_argument("--score-only", action="store_true", help="score the model dir as it is, no training")
    parser.add_argument("--facesets-from", type=Path, help="use the prepared a-/b-train and -held facesets in this "
                                                          "folder (bench/gpu_carry.py), no extraction")
    parser.add_argument("--outputs-to", type=Path, help="no dlib here: save the held-out outputs (a folder of "
                                                        ".npz files) instead of scoring them")
    parser.add_argument("--score-outputs", type=Path, help="score outputs saved by --outputs-to; no training")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--color", choices=COLOR_MODES, default="none", help="with --score-outputs: recolour the "
                        "swaps first, as `swapface swap --color` does (default: the model's own colours)")
    parser.add_argument("--sharpen", type=float, default=0.0, help="with --score-outputs: unsharp-mask the swaps "
                        "first (before --color), as `swapface swap --sharpen` does (default 0: as the model drew them)")
    parser.add_argument("--preview", type=Path, help="with --score-outputs: also write a grid of held-out sources "
                                                     "and outputs to this PNG, to look at")
    parser.add_argument("--model", choices=["swapface", "classic", "blurred"], default="swapface")
    parser.add_argument("--blur", type=float, default=1.0, help="with --model blurred: the blur's sigma, in pixels "
                                                                "of the --resolution crops")
    parser.add_argument("--clips", nargs=2, default=list(CLIPS.values()), metavar=("A", "B"),
                        help="another pair of ../shared/data/videos (with its own --work): does a result hold "
                             "beyond the protocol's pair?")
    args = parser.parse_args()
    if args.blur <= 0:
        parser.error(f"--blur must be a positive sigma in pixels, got {args.blur:g}")

    if args.facesets_from:
        facesets = {i: (args.facesets_from / f"{i}-train", args.facesets_from / f"{i}-held") for i in CLIPS}
    else:
        facesets = prepare(args.work, args.workers, dict(zip(CLIPS, args.clips, strict=True)))
    changes = {k: getattr(args, k) for k in ("latent_channels", "dense_dims") if getattr(args, k) is not None}
    asked = dict(changes, latent_side=args.latent_side) if args.latent_side else changes
    if args.latent_side:  # as a stride at the preset's own size: preset() keeps the side at any --resolution
        changes["latent_stride"] = PRESETS[args.preset].resolution // args.latent_side
    if changes:  # a variant of the preset, named after the flags asked (the model dir records the architecture)
        variant = args.preset + "".join(f"-{k.split('_')[0][0]}{k.split('_')[1][0]}{v}" for k, v in asked.items())
        PRESETS[variant] = PRESETS[args.preset].replace(**changes)
        args.preset = variant
    options = TrainOptions(preset=args.preset, resolution=args.resolution, batch_size=args.batch_size, lr=args.lr,
                           time_limit=args.minutes * 60, steps=args.steps, device=args.device, precision=args.precision,
                           compile=args.compile, save_every=2000, preview_every=2000, snapshot_every=0,
                           log_every=50, init_from=args.init_from, freeze=tuple(args.freeze or ()),
                           **{k: getattr(args, k) for k in LEVERS if getattr(args, k) is not None})
    augment = {name: getattr(args, name) for name in ("warp", "resample") if getattr(args, name) is not None}
    options = dataclasses.replace(options, augment=dataclasses.replace(options.augment, **augment))
    train_sets = {identity: pair[0] for identity, pair in facesets.items()}
    held = {identity: pair[1] for identity, pair in facesets.items()}
    references = {}
    for identity, path in train_sets.items():
        with Faceset.open(path) as faceset:
            references[identity] = faceset.mean_embedding()
    started = time.perf_counter()
    if args.score_outputs:
        steps, directions = score_outputs(held, args, references)
    else:
        run = {"swapface": swapface_run, "classic": classic_run, "blurred": blurred_run}[args.model]
        steps, directions = run(train_sets, held, args, options, references)
    run_seconds = time.perf_counter() - started  # training (the --minutes budget) and scoring
    real = {}
    for identity, path in held.items():
        with Faceset.open(path) as faceset:
            embeddings = faceset.embeddings()
        other = "b" if identity == "a" else "a"
        real[identity] = [float(np.linalg.norm(embeddings - references[k], axis=1).mean()) for k in (identity, other)]

    trained_on = args.device if args.score_outputs else device_name(args.device)
    model_name = {"classic": "classic autoencoder", "blurred": f"real held-out faces blurred by {args.blur:g} px"}.get(
        args.model, f"swapface {args.preset} preset")
    trained = "" if args.model == "blurred" else (f", {steps} steps of batch {args.batch_size} in {args.minutes:g} min "
                                                  f"on {trained_on}")
    table = Table(title=f"quality protocol: {model_name} at {args.resolution or 'preset'} px{trained}")
    for column in COLUMNS:
        table.add_column(column)
    rows = {}
    for d in directions:
        rows[d.name] = {**headline(d), "faces": len(d.nme)}
        r = rows[d.name]
        cells = [f"{r[key]:{fmt}}" if key in r and math.isfinite(r[key]) else "" for key, fmt in COLUMNS.values()]
        table.add_row(f"{d.name} ({r['faces']})", *cells[1:])
    for identity, (d_own, d_other) in real.items():
        table.add_row(f"real held-out {identity.upper()}", "", f"{d_own:.3f}", f"{d_other:.3f}")
    console = Console(width=200)
    console.print(table)
    console.print("protocol's classic (128 px, H200, 240 s): " + ", ".join(f"{k} {v}" for k, v in CLASSIC.items())
                  + f"; PSNR A {CLASSIC_PSNR['a']} dB, B {CLASSIC_PSNR['b']} dB. Targets: {TARGETS}.")
    if args.json:
        args.json.write_text(json.dumps(dict(model=args.model, steps=steps, run_seconds=run_seconds, device=trained_on,
                                             preset=args.preset, resolution=args.resolution,
                                             batch_size=args.batch_size, directions=rows, real=real), indent=1))


if __name__ == "__main__":
    try:
        main()
    except SwapfaceError as error:  # e.g. a --work folder extracted by another face backend: one line, no traceback
        sys.exit(f"error: {error}")
