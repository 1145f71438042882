"""Watermark robustness, false positives, PSNR cost and time, on real footage.

Swapped clips: the first `--frames` frames of each of `--clips` real single-face clips, made 1920x1080
(scaled to 1080 px high, centred, edges replicated: bench/swap.py's make_clip), swapped with the
bundled demo model twice, with the watermark and without (PNG frames, so the PSNR compares the
marked and unmarked swap exactly), then H.264-encoded at every CRF of `--crfs` and every height of
`--heights` (area downscale): clips x CRFs x heights re-encoded clips, each checked with the
detector `swapface verify` uses. False positives: every unswapped clip and still in ../shared/data,
scored with the default key and with `--random-keys` random keys. Time: the watermark's share of the
swap's time per 1080p frame (embedding), and the detector's time per frame. Prints markdown tables.

    python bench/watermark.py [--frames 12] [--clips 9] [--crfs 23 28 32] [--heights 1080 720 480 360]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import secrets
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from swap import make_clip  # bench/swap.py

from swapface.demo import bundled_model
from swapface.media import open_media
from swapface.provenance.verify import pool_watermark
from swapface.provenance.watermark import DEFAULT_KEY, Z_THRESHOLD
from swapface.swap.options import SwapOptions
from swapface.swap.pipeline import swap_media

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIPS = ("lp_d3.mp4", "lp_d5.mp4", "lp_d8.mp4", "lp_d10.mp4", "lp_d19.mp4", "lp_s18.mp4", "vrt_1.mp4", "fom_10.mp4",
         "dpe_d.mp4", "lp_d12.mp4", "lp_d7.mp4", "lp_d9.mp4", "lp_d0.mp4", "lp_d18.mp4", "lp_d13.mp4", "vrt_4.mp4",
         "fom_08.mp4", "dpe_s.mp4", "lp_s32.mp4", "lp_s20.mp4")


def encode(images: list[np.ndarray], out: Path, crf: int, height: int) -> None:
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        width = round(images[0].shape[1] * height / images[0].shape[0] / 2) * 2
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for image in images:
            if image.shape[0] != height:
                image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255**2 / mse) if mse > 0 else float("inf")


def swapped_clips(root: Path, args: argparse.Namespace) -> tuple[list[list[np.ndarray]], list[float], list[float]]:
    """Marked frames per clip, the PSNR of each marked frame against the unmarked swap, and the
    compositing stage's seconds per frame without and with the mark. The bundled demo model (64 px,
    trained on two faces) makes a face a detector finds only on some clips; a clip whose marked swap
    shows a face in fewer than half its frames is left out (and reported), since no watermark can be
    read off a face nobody finds."""
    clips, psnrs, per_frame = [], [], {True: [], False: []}
    for name in CLIPS:
        if len(clips) == args.clips:
            break
        source = root / f"{Path(name).stem}_1080p.mp4"
        make_clip(DATA / "videos" / name, source, args.frames)
        frames = {}
        for marked in (False, True):
            out = root / f"{source.stem}_{'marked' if marked else 'plain'}"
            options = SwapOptions(watermark=DEFAULT_KEY if marked else None, credentials=False)
            stats = swap_media(source, bundled_model(), out, options)
            per_frame[marked].append(stats.times.seconds["blend"] / max(stats.frames, 1))
            frames[marked] = [f.image for f in open_media(out)]
        found = pool_watermark(root / f"{source.stem}_marked", frames=args.frames)
        if found.faces < found.frames / 2:
            print(f"  left out {name}: the demo model's face found in {found.faces}/{found.frames} frames", flush=True)
            continue
        psnrs += [psnr(m, p) for m, p in zip(frames[True], frames[False], strict=True)]
        clips.append(frames[True])
        print(f"  swapped {name}: lossless z {found.score().z:.1f}", flush=True)
    return clips, psnrs, [float(np.mean(per_frame[False])), float(np.mean(per_frame[True]))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--clips", type=int, default=9)
    parser.add_argument("--crfs", type=int, nargs="+", default=[23, 28, 32])
    parser.add_argument("--heights", type=int, nargs="+", default=[1080, 720, 480, 360])
    parser.add_argument("--random-keys", type=int, default=100)
    parser.add_argument("--fp-frames", type=int, default=8, help="frames read per unswapped clip")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clips, psnrs, blend = swapped_clips(root, args)
        rows, detect_seconds, detect_frames = [], 0.0, 0
        for crf in args.crfs:
            for height in args.heights:
                found, zs = 0, []
                for i, images in enumerate(clips):
                    path = root / f"re_{i}_{crf}_{height}.mp4"
                    encode(images, path, crf, height)
                    start = time.perf_counter()
                    detector = pool_watermark(path, frames=args.frames)
                    detect_seconds += time.perf_counter() - start
                    detect_frames += detector.frames
                    score = detector.score(DEFAULT_KEY)
                    found += score.found
                    zs.append(score.z)
                    path.unlink()
                rows.append((crf, height, found, len(clips), min(zs), float(np.median(zs))))
                print(f"  crf {crf} {height}p: {found}/{len(clips)}, z {' '.join(f'{z:.1f}' for z in zs)}", flush=True)
        unswapped = sorted((DATA / "videos").glob("*.mp4")) + sorted(p for p in (DATA / "stills").iterdir()
                                                                     if p.suffix != ".md")
        keys = [DEFAULT_KEY] + [secrets.token_hex(8) for _ in range(args.random_keys)]
        null_z, default_z = [], []
        for path in unswapped:
            detector = pool_watermark(path, frames=args.fp_frames)
            scores = [detector.score(k).z for k in keys]
            default_z.append(scores[0])
            null_z += scores
    total = sum(r[2] for r in rows)
    machine = platform.processor() or platform.machine()
    print(f"\n{dt.date.today()}, {machine}, {os.cpu_count()} cores, torch threads 1; "
          f"{len(clips)} swapped clips x {args.frames} frames at 1920x1080 (demo model)\n")
    print("| CRF | height | detected | min z | median z |\n|---|---|---|---|---|")
    for crf, height, found, n, zmin, zmed in rows:
        print(f"| {crf} | {height} | {found}/{n} | {zmin:.1f} | {zmed:.1f} |")
    print(f"\ndetected in {total}/{sum(r[3] for r in rows)} re-encoded clips (threshold z >= {Z_THRESHOLD:.2f})")
    null = np.array(null_z)
    print(f"unswapped: {len(unswapped)} files; default key: max z {max(default_z):.2f}, "
          f"{sum(z >= Z_THRESHOLD for z in default_z)} false positives; with {args.random_keys} random keys as well: "
          f"{len(null)} scores, mean {null.mean():.2f}, std {null.std():.2f}, max {null.max():.2f}, "
          f"{int((null >= Z_THRESHOLD).sum())} false positives")
    p = np.array(psnrs)
    print(f"PSNR of the marked swap against the unmarked: min {p.min():.1f} dB, median {np.median(p):.1f} dB")
    print(f"compositing per 1080p frame: {blend[0] * 1000:.0f} ms without the mark, {blend[1] * 1000:.0f} ms with "
          f"({blend[1] / blend[0]:.2f}x); detection {detect_seconds / max(detect_frames, 1) * 1000:.0f} ms per frame "
          "read (decode, face search, landmarks, canvas)")


if __name__ == "__main__":
    main()
