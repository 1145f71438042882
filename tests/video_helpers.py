"""Helpers for tests that need a particular video file made from real frames."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np


def write_clip(path: Path, frames: Iterable[np.ndarray], fps: int = 30, faststart: bool = False) -> Path:
    """Encode RGB frames as H.264 (near-lossless) so tests can build inputs from real footage."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        stream = None
        for image in frames:
            if stream is None:
                stream = out.add_stream("libx264", rate=fps, options={"crf": "10", "preset": "ultrafast"})
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = "yuv420p"
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def set_display_rotation(path: Path, clockwise_degrees: int) -> None:
    """Patch the MP4 track header's display matrix, as phones do, to ask players to rotate the picture."""
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    assert at > 0 and data[at + 4] == 0, "expected a version-0 tkhd box"
    one, minus = 0x10000, -0x10000
    matrices = {90: (0, one, 0, minus, 0, 0), 180: (minus, 0, 0, 0, minus, 0), 270: (0, minus, 0, one, 0, 0)}
    a, b, u, c, d, v = matrices[clockwise_degrees]
    struct.pack_into(">9i", data, at + 44, a, b, u, c, d, v, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
