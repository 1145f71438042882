"""Helpers for tests that need a particular video or image file made from real frames."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from swapface.media.scheduling import keep_scheduling


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


def write_packed_avi(path: Path, frames: Iterable[np.ndarray], fps: int = 30) -> Path:
    """MPEG-4 Part 2 in AVI with DivX-style packed B-frames, as archive footage has them: each B-frame is
    packed into the packet of the P-frame before it, and a tiny not-coded VOP (N-VOP) fills its slot.
    FFmpeg decodes such a file in presentation order but hands the frames decode-order timestamps
    (1, 3, 2, 5, 4...). FFmpeg's encoder cannot pack, so its packets are repacked here (one B-frame at a
    time, as DivX did): the user data says DivX (`DivX503b1393p`, the trailing `p` meaning packed) and
    each B-frame moves into the packet before it."""
    encoder = av.CodecContext.create("mpeg4", "w")
    encoder.time_base, encoder.framerate, encoder.pix_fmt = Fraction(1, fps), fps, "yuv420p"
    encoder.max_b_frames = 1
    packets: list[tuple[bytes, int]] = []
    for i, image in enumerate(frames):
        if not packets and encoder.width == 0:
            encoder.height, encoder.width = image.shape[:2]
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = i
        packets += [(bytes(p), p.pts) for p in encoder.encode(frame)]
    packets += [(bytes(p), p.pts) for p in encoder.encode(None)]
    header = packets[0][0]
    user = header.find(b"\x00\x00\x01\xb2")  # FFmpeg's own user data ("Lavc...") becomes DivX's
    end = header.find(b"\x00\x00\x01", user + 4)
    packets[0] = (header[:user + 4] + b"DivX503b1393p" + header[end:], packets[0][1])
    # N-VOP: P type, modulo_time_base 0, marker, vop_time_increment (bits for resolution `fps`),
    # marker, vop_coded 0, then the stuffing up to the byte boundary.
    bits = "01" + "0" + "1" + "0" * ((fps - 1).bit_length()) + "1" + "0"
    bits += "0" + "1" * ((-len(bits) - 1) % 8)
    nvop = b"\x00\x00\x01\xb6" + int(bits, 2).to_bytes(len(bits) // 8, "big")
    packed: list[bytes] = []
    i = 0
    while i < len(packets):
        data, pts = packets[i]
        if i + 1 < len(packets) and packets[i + 1][1] < pts:  # a B-frame shown before this P-frame
            packed += [data + packets[i + 1][0], nvop]
            i += 2
        else:
            packed.append(data)
            i += 1
    with av.open(str(path), "w", format="avi") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = encoder.height, encoder.width
        stream.pix_fmt, stream.time_base = "yuv420p", Fraction(1, fps)
        for n, data in enumerate(packed):
            packet = av.Packet(data)
            packet.pts = packet.dts = n
            packet.time_base, packet.stream, packet.is_keyframe = Fraction(1, fps), stream, n == 0
            out.mux(packet)
    return path


def pattern(height: int, width: int, index: int, alpha: bool = False) -> np.ndarray:
    """A 16-bit RGB(A) test picture: smooth ramps that need more than 8 bits, a moving bar, texture."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = x / max(width - 1, 1)
    g = y / max(height - 1, 1)
    b = 0.5 + 0.4 * np.sin((x + 3 * index) / 5.0) * np.cos(y / 7.0)
    picture = np.stack([r, g, b] + ([1.0 - 0.8 * r * g] if alpha else []), axis=-1)
    return np.round(np.clip(picture, 0, 1) * 65535).astype(np.uint16)


def write_pattern_clip(path: Path, encoder: str, pix_fmt: str, size: tuple[int, int] = (64, 64), frames: int = 6,
                       fps: int = 25, pts: list[int] | None = None, options: dict[str, str] | None = None,
                       metadata: dict[str, str] | None = None, audio: str | None = None,
                       fmt: str | None = None) -> Path:
    """A short clip of `pattern` frames as `encoder`/`pix_fmt`: `pts` in 1/1000 s gives variable frame
    timing; `audio` names an audio encoder for a 440 Hz tone as long as the video; `metadata` goes on the
    video stream (a timecode, say)."""
    width, height = size
    alpha = "a" in pix_fmt.split("p")[0][3:] or pix_fmt.startswith(("rgba", "gbra"))
    tb = Fraction(1, 1000) if pts is not None else Fraction(1, fps)
    times = pts if pts is not None else list(range(frames))
    with keep_scheduling(), av.open(str(path), "w", format=fmt) as out:  # SVT-AV1 makes threads real-time
        stream = out.add_stream(encoder, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.time_base = tb
        stream.options = options or {}
        for key, value in (metadata or {}).items():
            stream.metadata[key] = value
        sound = out.add_stream(audio, rate=48000) if audio else None
        for i, t in enumerate(times):
            picture = pattern(height, width, i, alpha)
            frame = av.VideoFrame.from_ndarray(picture, format="rgba64le" if alpha else "rgb48le")
            frame.pts, frame.time_base = t, tb
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if sound is not None:
            seconds = float((times[-1] - times[0]) * tb + (Fraction(1, fps) if pts is None else Fraction(40, 1000)))
            samples = int(seconds * 48000)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)[None]
            chunk = sound.codec_context.frame_size or 1024
            fmt_name = sound.codec_context.format.name
            for start in range(0, samples, chunk):
                piece = tone[:, start:start + chunk]
                data = piece if fmt_name == "fltp" else (piece * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt_name if fmt_name in (
                    "fltp", "s16p") else "s16", layout="mono")
                frame.sample_rate, frame.pts = 48000, start
                for packet in sound.encode(frame):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return path


def write_damaged_jpeg(path: Path, still: Path, cut: bool) -> Path:
    """A real JPEG with 20 stray bytes before its second marker, which makes libjpeg print "Corrupt JPEG
    data" on stderr; cut in half (an interrupted copy), it cannot be decoded at all."""
    data = still.read_bytes()
    second_marker = 4 + int.from_bytes(data[4:6], "big")  # SOI, then the first segment's length
    data = data[:second_marker] + bytes(20) + data[second_marker:]
    path.write_bytes(data[: len(data) // 2] if cut else data)
    return path
