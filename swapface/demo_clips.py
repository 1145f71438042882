"""Demo inputs that need nothing but installed packages: short clips animated from public-domain photos.

The photos are NASA's portrait of astronaut Eileen Collins (scikit-image) and the US Navy portrait of
Grace Hopper (matplotlib). A slow virtual camera move (zoom, pan, a little roll, light changes) turns
each into a clip, so extraction, training and swapping see motion as they would in real footage.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import matplotlib.cbook
import numpy as np
import skimage.data

from swapface.atomic import atomic_path
from swapface.media.images import read_rgb
from swapface.media.writer import synthetic_tags


def demo_photos() -> dict[str, np.ndarray]:
    """The two bundled public-domain portraits, RGB uint8."""
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        hopper = read_rgb(handle.name)
    return {"astronaut": skimage.data.astronaut(), "grace_hopper": hopper}


def camera_move(image: np.ndarray, frames: int, seed: int) -> list[np.ndarray]:
    """Frames of a smooth virtual camera move over a still photo."""
    rng = np.random.default_rng(seed)
    height, width = image.shape[:2]
    phase = rng.uniform(0, 2 * np.pi, 4)
    out = []
    for i in range(frames):
        t = i / max(frames - 1, 1)
        zoom = 1.0 + 0.12 * np.sin(np.pi * t + phase[0]) ** 2
        roll = 4.0 * np.sin(2 * np.pi * t + phase[1])
        shift = np.array([0.03 * width * np.sin(2 * np.pi * t + phase[2]),
                          0.02 * height * np.sin(2 * np.pi * t + phase[3])])
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), roll, zoom)
        matrix[:, 2] += shift
        frame = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REFLECT)
        light = 1.0 + 0.06 * np.sin(2 * np.pi * t * 1.5 + phase[0])
        out.append(np.clip(frame.astype(np.float32) * light, 0, 255).astype(np.uint8))
    return out


def write_demo_clip(frames: list[np.ndarray], path: Path, fps: int = 24) -> Path:
    """Encode frames as H.264 with a quiet tone for audio; labelled synthetic like all our videos."""
    height, width = frames[0].shape[:2]
    height, width = height - height % 2, width - width % 2
    with atomic_path(path) as tmp, av.open(str(tmp), "w") as out:
        out.metadata.update(synthetic_tags())
        video = out.add_stream("libx264", rate=fps, options={"crf": "16", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "mono"
        samples = int(48000 * len(frames) / fps)
        tone = (0.05 * np.sin(2 * np.pi * 220 * np.arange(samples) / 48000)).astype(np.float32)
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, start
            for packet in audio.encode(chunk):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]), format="rgb24")
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    return path


def make_demo_clips(folder: Path, frames: int = 48) -> dict[str, Path]:
    """Write one clip per bundled portrait into `folder`; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    return {name: write_demo_clip(camera_move(photo, frames, seed), folder / f"{name}.mp4")
            for seed, (name, photo) in enumerate(demo_photos().items())}
