"""Blend-mask modes on a talking clip with a microphone pasted over the lower face (vrt_4.mp4, kept out
of the occlusion network's training; the object textured with scikit-image's held-out `coffee`):
share of the object's pixels the swap leaves unchanged, share of the visible face it changes, on
frames with and without the object. Model: the demo model. Baseline: --mask both (the old default).

    python bench/occlusion.py [--frames 24]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch

from swapface.faces import make_backend
from swapface.faces.masks import dense_face_mask
from swapface.media import open_media
from swapface.media.images import read_rgb, write_rgb
from swapface.swap.options import SwapOptions
from swapface.swap.pipeline import swap_media
from swapface.train.occluders import microphone_over_mouth

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
DEMO_MODEL = Path(__file__).resolve().parents[1] / "swapface" / "assets" / "demo_model"
MODES = ("both", "occlusion", "hull+occlusion", "all")
UNCHANGED = 8



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp())
    folder = root / "frames"
    folder.mkdir()
    backend = make_backend("mediapipe")
    texture = cv2.resize(skimage.data.coffee(), (700, 700), interpolation=cv2.INTER_AREA)
    masks, faces = {}, {}
    for frame in open_media(VIDEOS / "vrt_4.mp4"):
        if frame.index >= args.frames:
            break
        image = frame.image.copy()
        faces[frame.index] = backend.detect(image)[0]
        if frame.index % 2:  # every other frame carries the object
            masks[frame.index] = microphone_over_mouth(image.shape[:2], faces[frame.index].landmarks)
            image[masks[frame.index]] = texture[masks[frame.index]]
        write_rgb(folder / f"{frame.index:04d}.png", image)
    model = root / "model"
    shutil.copytree(DEMO_MODEL, model)
    config = json.loads((model / "config.json").read_text())
    config["training"]["faces"] = {"backend": "mediapipe", "scheme": "mediapipe478"}
    (model / "config.json").write_text(json.dumps(config))
    print(f"vrt_4.mp4, {args.frames} frames (700x700), object on every other frame; demo model; unchanged = "
          f"within {UNCHANGED} grey levels")
    print("| --mask | object pixels unchanged | visible face changed (object frames) | face changed (clean frames) "
          "| changed beyond the face (25 px on), per face pixel | seconds |")
    print("|---|---|---|---|---|---|")
    for mode in MODES:
        out = root / mode
        start = time.perf_counter()
        swap_media(folder, model, out, SwapOptions(mask=mode, batch_size=4, detect_workers=0))
        seconds = time.perf_counter() - start
        kept, visible, clean, outside = [], [], [], []
        for index, face in faces.items():
            before = read_rgb(folder / f"{index:04d}.png").astype(int)
            changed = np.abs(read_rgb(out / f"{index:04d}.png").astype(int) - before).max(2) > UNCHANGED
            region = dense_face_mask(face.dense, changed.shape) > 0.5
            far = cv2.dilate(region.astype(np.uint8), np.ones((51, 51), np.uint8)) == 0
            outside.append(changed[far].sum() / region.sum())
            covered = masks.get(index, np.zeros_like(region))
            region = cv2.erode((region & ~covered).astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
            if index in masks:
                kept.append(1 - changed[covered].mean())
                visible.append(changed[region].mean())
            else:
                clean.append(changed[region].mean())
        print(f"| {mode} | {np.mean(kept):.3f} | {np.mean(visible):.3f} | {np.mean(clean):.3f} | "
              f"{np.mean(outside):.3f} | {seconds:.1f} |",
              flush=True)
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
