"""Extraction speed: frames/s of `swapface extract` at 512x512 and 1920x1080 on this machine.

The baseline, run in the same process on the same frames, is the plain one-process loop (workers=1);
our default runs the per-frame analysis in one worker process per core. Prints a table.

    python bench/extract.py [--frames 60]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from swapface.faces import AlignSpec
from swapface.faceset.extract import ExtractOptions, extract

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def run(clip: str, frames: int, workers: int, min_face: int) -> tuple[float, int, int]:
    out = Path(tempfile.mkdtemp()) / "fs"
    options = ExtractOptions(spec=AlignSpec(256, "whole"), workers=workers, min_face=min_face,
                             max_frames=frames)
    start = time.perf_counter()
    stats = extract([VIDEOS / clip], out, options)
    seconds = time.perf_counter() - start
    shutil.rmtree(out.parent)
    return stats.frames_read / seconds, stats.faces_found, stats.faces_kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames read from each clip")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    cases = [
        ("lp_d3.mp4", "512x512", 80),
        ("facenet_crowd.mp4", "1920x1080", 80),
        ("facenet_crowd.mp4", "1920x1080", 40),
    ]
    print(f"machine: {platform.processor() or platform.machine()}, {cores} cores; frames per case: {args.frames}")
    print(f"| clip | size | min face | faces found/kept | baseline 1 process fps | ours {cores} workers fps | ratio |")
    print("|---|---|---|---|---|---|---|")
    for clip, size, min_face in cases:
        base_fps, _, _ = run(clip, args.frames, 1, min_face)
        fps, found, kept = run(clip, args.frames, cores, min_face)
        print(f"| {clip} | {size} | {min_face} px | {found}/{kept} | {base_fps:.2f} | {fps:.2f} | "
              f"{fps / base_fps:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
