"""Swap speed: frames/s of `swapface swap` at 1920x1080, with a per-stage breakdown.

Input: a real clip with one face, upscaled to 1080 px high and centred in a 1920x1080 frame (lp_d3,
face about 500 px), or, with --clip facenet_crowd.mp4, the native-1080p crowd clip. Models: the 128
and 256 px presets (random weights: speed does not depend on them). The baseline, run in the same
process on the same frames, is the plain approach: full-resolution detection on every frame, fp32,
one face per model call. Stage times are per frame and summed over threads (decode, keyframe
detection, model + blend and encode run beside the tracking thread, so they overlap it; "track"
includes waiting for a keyframe's detections). Prints a markdown table.

    python bench/swap.py [--frames 48] [--device cuda] [--clip facenet_crowd.mp4]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from swapface.media import open_media
from swapface.model import SwapAutoencoder, preset
from swapface.modeldir import save_model
from swapface.swap.options import SwapOptions
from swapface.swap.pipeline import swap_media

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
STAGES = ("decode", "detect ahead", "track", "align", "crop", "model", "blend", "encode")


def make_clip(source: Path, out: Path, frames: int) -> None:
    """`frames` frames of `source` as 1920x1080 H.264: scaled to 1080 px high, centred, edges replicated."""
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"crf": "18", "preset": "ultrafast"}
        for i, frame in enumerate(open_media(source)):
            if i == frames:
                break
            image = frame.image
            if image.shape[:2] != (1080, 1920):
                scale = 1080 / image.shape[0]
                image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)[:1080, :1920]
                left = (1920 - image.shape[1]) // 2
                image = cv2.copyMakeBorder(image, 0, 1080 - image.shape[0], left, 1920 - image.shape[1] - left,
                                           cv2.BORDER_REPLICATE)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def model_dir(root: Path, name: str) -> Path:
    torch.manual_seed(0)
    path = root / f"model_{name}"
    save_model(path, SwapAutoencoder(preset(name)))
    return path


def run(clip: Path, model: Path, out: Path, options: SwapOptions) -> tuple[float, dict[str, float], int]:
    stats = swap_media(clip, model, out, options)
    per_frame = {stage: stats.times.seconds.get(stage, 0.0) / stats.frames * 1000 for stage in STAGES}
    return stats.rate, per_frame, stats.faces_swapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--clip", default="lp_d3.mp4", help="clip in shared/data/videos (upscaled to 1080p)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch CPU threads")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="swapbench."))
    clip = root / "clip_1080p.mp4"
    make_clip(VIDEOS / args.clip, clip, args.frames)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else (
        platform.processor() or platform.machine())
    print(f"device: {device}; {os.cpu_count()} CPU cores; torch threads {args.threads}; clip {args.clip} -> "
          f"1920x1080, {args.frames} frames; torch {torch.__version__}; load average before the run "
          f"{os.getloadavg()[0]:.1f} (other processes share these cores)")
    ours = dict(device=args.device, mask="both", blend="laplacian")
    cases = [
        ("128", "ours: detect every 5th frame (1/10-side faces) ahead in threads, track between, batch 8, "
                "bf16 if native", SwapOptions(**ours)),
        ("128", "ours, keyframes detected in the tracking thread", SwapOptions(**ours, detect_workers=0)),
        ("256", "ours, 256 px preset", SwapOptions(**ours)),
        ("128", "ours, every frame detected", SwapOptions(**ours, detect_every=1)),
        ("128", "ours, feather blend", SwapOptions(**{**ours, "blend": "feather"})),
    ]
    if not args.skip_baseline:
        cases.insert(0, ("128", "baseline: full-res detect every frame, fp32, batch 1",
                         SwapOptions(device=args.device, detect_every=1, detect_workers=0, min_face=80,
                                     precision="fp32", batch_size=1, smooth=0.0)))
    print("| model | run | fps | vs baseline | faces | " + " | ".join(f"{s} ms" for s in STAGES) + " |")
    print("|---|---|---|---|---|" + "---|" * len(STAGES))
    models: dict[str, Path] = {}
    base_fps = None
    for name, label, options in cases:
        models.setdefault(name, model_dir(root, name))
        fps, stages, faces = run(clip, models[name], root / "out.mp4", options)
        if label.startswith("baseline"):
            base_fps = fps
        ratio = f"{fps / base_fps:.2f}x" if base_fps else "-"
        print(f"| {name} px | {label} | {fps:.2f} | {ratio} | {faces} | "
              + " | ".join(f"{stages[s]:.1f}" for s in STAGES) + " |", flush=True)


if __name__ == "__main__":
    main()
