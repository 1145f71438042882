"""Face backends compared: per-frame cost at 1080p, faces found in the crowd clip, alignment jitter on
still-head clips; and the occlusion network's cost per face. Baseline: the dlib backend, in the same
process on the same frames. Prints markdown tables.

    python bench/faces.py [--frames 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from swapface.faces import BACKENDS, AlignSpec, alignment_matrix, crop_face, invert, make_backend, transform_points
from swapface.media import open_media

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
STILL_HEAD_CLIPS = ("dpe_s.mp4", "vrt_1.mp4", "lp_d19.mp4")
SPEC = AlignSpec(256, "whole")


def frames(clip: str, count: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """The first `count` frames; with `size`, scaled to its height and padded to its width (1080p)."""
    out = []
    for frame in open_media(VIDEOS / clip):
        image = frame.image
        if size is not None:
            scale = size[1] / image.shape[0]
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            pad = size[0] - image.shape[1]
            image = cv2.copyMakeBorder(image, 0, 0, pad // 2, pad - pad // 2, cv2.BORDER_REFLECT)
        out.append(image)
        if len(out) >= count:
            break
    return out


def per_frame_ms(backend, images: list[np.ndarray]) -> tuple[float, int]:
    backend.detect(images[0])  # load models
    start = time.perf_counter()
    found = sum(len(backend.detect(image)) for image in images)
    return (time.perf_counter() - start) / len(images) * 1000, found


def jitter(backend, images: list[np.ndarray]) -> float:
    """Mean second difference over time of where the aligned crop lies (its corners and centre mapped
    back into the frame), in crop pixels at 256 px: steady head motion cancels out, frame-to-frame
    landmark noise does not. Raw per-frame landmarks, no smoothing."""
    key = np.array([[0, 0], [256, 0], [0, 256], [256, 256], [128, 128]], np.float64)
    positions, scales = [], []
    for image in images:
        faces = backend.detect(image)
        if not faces:
            positions.append(None)
            continue
        matrix = alignment_matrix(max(faces, key=lambda f: f.size).landmarks, SPEC)
        positions.append(transform_points(key, invert(matrix)))
        scales.append(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    steps = [np.linalg.norm(positions[t + 1] - 2 * positions[t] + positions[t - 1], axis=1).mean()
             for t in range(1, len(positions) - 1) if all(p is not None for p in positions[t - 1:t + 2])]
    return float(np.mean(steps) * np.mean(scales))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="frames per clip")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; one thread; "
          f"{args.frames} frames per clip")
    crowd = frames("facenet_crowd.mp4", args.frames)
    head_1080 = frames("vrt_4.mp4", args.frames, (1920, 1080))
    names = ["dlib"] + [name for name in BACKENDS if name != "dlib"]  # dlib, the backend before, is the baseline
    backends = {name: make_backend(name) for name in names}
    print("\n| backend | crowd 1080p ms/frame | faces found | talking head scaled to 1080p ms/frame | faces found | "
          "ratio to dlib (crowd / head) |")
    print("|---|---|---|---|---|---|")
    base = None
    for name, backend in backends.items():
        crowd_ms, found = per_frame_ms(backend, crowd)
        head_ms, head_found = per_frame_ms(backend, head_1080)
        base = base or (crowd_ms, head_ms)
        print(f"| {name} | {crowd_ms:.0f} | {found} | {head_ms:.0f} | {head_found} | {crowd_ms / base[0]:.2f}x / "
              f"{head_ms / base[1]:.2f}x |", flush=True)
    print("\n| clip | " + " | ".join(f"{name} jitter (crop px at 256)" for name in backends) + " |")
    print("|---|" + "---|" * len(backends))
    for clip in STILL_HEAD_CLIPS:
        images = frames(clip, args.frames * 3)
        print(f"| {clip} | " + " | ".join(f"{jitter(b, images):.3f}" for b in backends.values()) + " |", flush=True)

    from swapface.faces.occlusion import visible_face

    face = backends["dlib"].detect(head_1080[0])[0]
    print("\n| occlusion network | ms per face |")
    print("|---|---|")
    for size in (128, 256):
        crop = crop_face(head_1080[0], alignment_matrix(face.landmarks, AlignSpec(size, "whole")), size)
        visible_face(crop[None])
        start = time.perf_counter()
        for _ in range(20):
            visible_face(crop[None])
        print(f"| {size} px crop of a 1080p frame | {(time.perf_counter() - start) / 20 * 1000:.1f} |")


if __name__ == "__main__":
    main()
