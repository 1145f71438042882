"""Swap throughput in pieces: 1, 2, ... workers on a 1080p clip, as ratios against one piece, and what
that projects for a 2-hour film on K workers (or K GPUs at a given per-GPU frame rate).

    python bench/scale.py [--frames 120] [--workers 1 2] [--gpu-fps 60]

The projection uses the measured costs: the video index (demux) and the join (stream copy) per frame,
each worker's start-up (model and detectors loaded before the first frame), the warm-up frames each
piece tracks without writing, and the per-frame swap cost.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from swapface.demo import bundled_model
from swapface.media import open_media, probe
from swapface.media.chunks import index_video, join_pieces
from swapface.swap.chunked import WARMUP_SECONDS, swap_chunked
from swapface.swap.options import SwapOptions
from swapface.swap.pipeline import SwapPipeline, swap_media

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
FILM_FRAMES = 2 * 3600 * 24  # a 2-hour film at 24 fps


def make_1080p(path: Path, frames: int) -> Path:
    """A real talking face (lp_d7.mp4) scaled into a 1920x1080 frame, a keyframe every second."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30, options={"crf": "18", "preset": "ultrafast", "g": "30"})
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        for frame in open_media(DATA / "lp_d7.mp4"):
            if frame.index >= frames:
                break
            canvas = np.full((1080, 1920, 3), 40, np.uint8)
            canvas[:, 420:1500] = cv2.resize(frame.image, (1080, 1080), interpolation=cv2.INTER_CUBIC)
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="start with 1: it measures the "
                        "fixed cost of a worker")
    parser.add_argument("--gpu-fps", type=float, default=60.0, help="per-GPU swap rate for the GPU projection")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="swapface-scale-"))
    clip = make_1080p(work / "clip.mp4", args.frames)
    options = SwapOptions()

    started = time.perf_counter()
    SwapPipeline.from_model_dir(bundled_model(), options)
    startup = time.perf_counter() - started
    started = time.perf_counter()
    index = index_video(clip)
    index_per_frame = (time.perf_counter() - started) / len(index.pts)

    rows = []
    for workers in [0, *args.workers]:  # 0: the one-piece swap in this process, the baseline
        out = work / f"out{workers}.mp4"
        started = time.perf_counter()
        if workers == 0:
            stats = swap_media(clip, bundled_model(), out, options)
        else:
            stats = swap_chunked(clip, bundled_model(), out, options, workers)
        seconds = time.perf_counter() - started
        rows.append((workers, stats.frames, seconds, stats.frames / seconds))
    # a worker process's fixed cost (spawn, imports, model), index and join: one piece on one worker
    # against the same frames swapped in this process
    overhead = rows[1][2] - rows[0][2] if rows[1][0] == 1 else startup
    started = time.perf_counter()
    join_pieces([(work / "out0.mp4", index.pts[0])], work / "joined.mp4", probe(clip), options.video)
    join_per_frame = (time.perf_counter() - started) / len(index.pts)

    base = rows[0][3]
    print(f"1080p clip, {args.frames} frames; pipeline built in {startup:.1f} s, a worker's fixed cost "
          f"{overhead:.1f} s, index {index_per_frame * 1e3:.3f} ms/frame, join {join_per_frame * 1e3:.3f} ms/frame\n")
    print("| workers | frames | seconds | frames/s | vs one piece |\n|---|---|---|---|---|")
    for workers, frames, seconds, rate in rows:
        print(f"| {workers or 'one piece'} | {frames} | {seconds:.1f} | {rate:.2f} | {rate / base:.2f}x |")

    warmup = WARMUP_SECONDS * 24
    print(f"\nA 2-hour film ({FILM_FRAMES} frames at 24 fps), pieces of 4 per worker, {warmup:.0f} warm-up frames "
          "each:\n\n| K | on workers like this one (h) | on GPUs at {:.0f} fps each (h) |\n|---|---|---|"
          .format(args.gpu_fps))
    serial = FILM_FRAMES * (index_per_frame + join_per_frame)
    for k in (1, 4, 8, 16, 32, 64):
        swapped = FILM_FRAMES + 4 * k * warmup
        cpu = serial + overhead + startup * 4 + swapped / (base * k)
        gpu = serial + overhead + startup * 4 + swapped / (args.gpu_fps * k)
        print(f"| {k} | {cpu / 3600:.2f} | {gpu / 3600:.2f} |")


if __name__ == "__main__":
    main()
