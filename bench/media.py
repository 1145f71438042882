"""Film footage speed: 4K half-float EXR sequence (RGBA, ACEScg) against 4K H.264 mp4, read / write / swap.

Input: a real clip with one face (lp_d3, scaled to 1400 px) on a 3840x2160 gradient, written once as
an H.264 mp4 and once as a 16-bit half-float EXR sequence with alpha (ZIP compression, ACEScg, as a
plate from a VFX pipeline). Per path, in the same process: frames/s to read (decode + colour conversion
to the 8-bit working RGB), to write the frames back unchanged (EXR: restore the original pixels and
write; mp4: encode H.264 veryfast), and to swap end to end with the bundled demo model. Ratios are
against the mp4 path. Prints a markdown table.

    python bench/media.py [--frames 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import OpenImageIO as oiio
import torch

from swapface.demo import bundled_model
from swapface.media import open_media, probe
from swapface.media.colour import config
from swapface.media.writer import VideoSettings, open_writer, output_kind
from swapface.swap.options import SwapOptions
from swapface.swap.pipeline import swap_media

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
WIDTH, HEIGHT = 3840, 2160


def plates(frames: int) -> list[np.ndarray]:
    """`frames` 4K RGB frames: the face clip scaled to 1400 px, on a smooth gradient."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    background = np.stack([x / WIDTH, y / HEIGHT, 0.5 + 0.2 * np.sin(x / 300)], -1)
    background = (background * 255).astype(np.uint8)
    images = []
    for frame in open_media(VIDEOS / "lp_d3.mp4"):
        if frame.index == frames:
            break
        canvas = background.copy()
        canvas[380:1780, 1220:2620] = cv2.resize(frame.image, (1400, 1400), interpolation=cv2.INTER_CUBIC)
        images.append(canvas)
    return images


def write_mp4(path: Path, images: list[np.ndarray]) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "16", "preset": "ultrafast"}
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_exr(folder: Path, images: list[np.ndarray]) -> Path:
    """sRGB frames -> ACEScg half-float RGBA EXR frames plate.1001.exr..."""
    cpu = config().getProcessor("sRGB Encoded Rec.709 (sRGB)", "ACEScg").getDefaultCPUProcessor()
    folder.mkdir()
    alpha = np.ones((HEIGHT, WIDTH, 1), np.float32)
    for i, image in enumerate(images):
        rgb = image.astype(np.float32) / 255
        cpu.applyRGB(rgb.reshape(-1, 3))
        pixels = np.concatenate([rgb, alpha], -1).astype(np.float16)
        spec = oiio.ImageSpec(WIDTH, HEIGHT, 4, "half")
        spec.attribute("compression", "zip")
        out = oiio.ImageOutput.create(str(folder / f"plate.{1001 + i}.exr"))
        out.open(str(folder / f"plate.{1001 + i}.exr"), spec)
        out.write_image(pixels)
        out.close()
    return folder / "plate.####.exr"


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def read_all(source: Path) -> None:
    for _ in open_media(source):
        pass


def copy(source: Path, out: Path) -> Callable[[], None]:
    """Read the frames now; return the writing of them back unchanged (what is timed)."""
    frames = list(open_media(source))
    info = probe(source)

    def write() -> None:
        with open_writer(out, output_kind(out), info, VideoSettings()) as writer:
            for frame in frames:
                writer.write(frame, frame.image)

    return write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="mediabench."))
    images = plates(args.frames)
    sources = {"mp4 (H.264 8-bit)": root / "plate.mp4", "EXR (half RGBA, ACEScg)": write_exr(root / "exr", images)}
    write_mp4(sources["mp4 (H.264 8-bit)"], images)
    del images
    outputs = {"mp4 (H.264 8-bit)": (root / "copy.mp4", root / "swap.mp4"),
               "EXR (half RGBA, ACEScg)": (root / "copy" / "copy.%04d.exr", root / "swap" / "swap.%04d.exr")}
    rows = []
    for name, source in sources.items():
        read_s = timed(lambda source=source: read_all(source))
        copied, swapped = outputs[name]
        write_s = timed(copy(source, copied))
        stats = swap_media(source, bundled_model(), swapped, SwapOptions(queue_frames=4))
        rows.append((name, args.frames / read_s, args.frames / write_s, stats.rate, stats.faces_swapped))
    base = rows[0]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch threads {args.threads}, "
          f"{args.frames} frames of {WIDTH}x{HEIGHT}\n")
    print("| path | read frames/s | write frames/s | swap frames/s | swap vs mp4 | faces swapped |")
    print("|---|---|---|---|---|---|")
    for name, read, write, swap, faces in rows:
        print(f"| {name} | {read:.2f} ({read / base[1]:.2f}x) | {write:.2f} ({write / base[2]:.2f}x) | {swap:.2f} | "
              f"{swap / base[3]:.2f}x | {faces} |")


if __name__ == "__main__":
    main()
