"""Stream frames from a video, an image, or a folder of images, with their timing.

Frames are yielded one at a time (memory does not grow with the video's length), as RGB uint8 arrays
already turned upright when the video carries rotation metadata (phone videos).
"""

from __future__ import annotations

import heapq
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from swapface.errors import InputError, MediaWarning
from swapface.media.codecs import pixel_shape
from swapface.media.depth import IntegerSpace, PixelSpace, to_rgb8
from swapface.media.images import IMAGE_SUFFIXES, is_image_path, read_rgb
from swapface.media.sequences import (
    Sequence,
    describe_pixels,
    find_sequence,
    frame_pixels,
    read_spec,
    sequence_fps,
    sequence_timecode,
    warn_gaps,
)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: `index` counts from 0 in decode order, `time` is seconds from the start."""

    index: int
    time: float
    image: np.ndarray  # HxWx3 uint8 RGB, upright
    source: str
    pts: int | None = None
    # Footage deeper than 8 bits or with alpha: its own pixels (HxWxC, upright) and how they map to `image`
    # (see swapface.media.depth); the writer keeps them wherever the swap leaves `image` as it was.
    original: np.ndarray | None = None
    space: PixelSpace | None = None
    untouched: np.ndarray | None = None  # `image` as read (the swap changes `image` in place)
    number: int | None = None  # frame number of an image sequence (shot.1001.exr -> 1001)


@dataclass(frozen=True)
class MediaInfo:
    """What a later stage needs to reproduce the input's geometry and timing."""

    path: str
    kind: str  # "video", "image", "folder" or "sequence"
    width: int
    height: int
    frame_count: int | None
    fps: Fraction | None
    time_base: Fraction | None
    duration: float | None
    rotation: int
    has_audio: bool
    start_time: float = 0.0  # seconds where the container's first stream starts (0 for images)
    codec: str | None = None  # the video decoder's name (h264, prores, ...) or the image format
    pix_fmt: str | None = None  # FFmpeg pixel format of the stored pixels (yuv422p10le, rgba64le, ...)
    timecode: str | None = None  # SMPTE timecode of the first frame, where the file carries one


def _rotation_of(frame: av.VideoFrame) -> int:
    """Clockwise degrees the frame must turn to be upright (0, 90, 180, 270)."""
    degrees = int(round(getattr(frame, "rotation", 0) or 0))
    # FFmpeg's display matrix gives counter-clockwise rotation; the picture must turn the other way.
    return (-degrees) % 360


_BT601_OR_UNSPECIFIED = {2, 5, 6}  # FFmpeg colorspace ids: unspecified, BT.470BG, SMPTE 170M


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """Frame -> RGB uint8. 4:2:0 BT.601 limited-range frames (most video) are converted by OpenCV:
    swscale's direct yuv420p->rgb24 path comes out 1-1.4 levels dark, which a decode/encode round trip
    would accumulate; OpenCV's conversion round-trips with our encoder to within 0.01 levels."""
    if (frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0
            and frame.colorspace in _BT601_OR_UNSPECIFIED and frame.color_range in (0, 1)):
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
    return frame.to_ndarray(format="rgb24")


SIXTEEN_BIT = IntegerSpace(65535)
_ORIGINAL_FORMAT = {False: "rgb48le", True: "rgba64le"}


def _has_alpha(frame: av.VideoFrame) -> bool:
    return pixel_shape(frame.format.name).alpha


def _keeps_original(pix_fmt: str) -> bool:
    """Frames deeper than 8 bits, or with alpha, keep their own pixels (as 16-bit RGB(A)) for the writer."""
    try:
        shape = pixel_shape(pix_fmt)
    except ValueError:
        return False
    return shape.depth > 8 or shape.alpha


def _upright(image: np.ndarray, rotation: int) -> np.ndarray:
    if rotation == 0:
        return image
    # np.rot90 turns counter-clockwise for positive k.
    return np.ascontiguousarray(np.rot90(image, k={90: 3, 180: 2, 270: 1}[rotation]))


def _folder_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _open_container(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise InputError(path, "no such file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a readable video ({exc.__class__.__name__})") from None
    if not container.streams.video:
        container.close()
        raise InputError(path, "has no video stream")
    return container


def _check_complete(container: av.container.InputContainer, path: Path) -> None:
    """Demux (not decode) every video packet, so a truncated or damaged file fails before any work."""
    stream = container.streams.video[0]
    container.seek(0)
    packets = 0
    try:
        for packet in container.demux(stream):
            if packet.size:
                packets += 1
    except av.error.FFmpegError as exc:
        raise InputError(path, f"video is damaged after {packets} packets ({exc.__class__.__name__})") from None
    if packets == 0:
        raise InputError(path, "video holds no frames")
    # AVI counts its length in time-base ticks, which are frames only when the tick is one frame long.
    counts_frames = container.format.name != "avi" or (stream.time_base or 0) * (stream.average_rate or 0) == 1
    if stream.frames and counts_frames and packets < stream.frames:
        raise InputError(path, f"video is truncated ({packets} of {stream.frames} frames present)")


def _probe_sequence(sequence: Sequence) -> MediaInfo:
    first = sequence.path(sequence.numbers[0])
    spec = read_spec(first)
    fps = sequence_fps(spec)
    deep = str(spec.format) not in ("uint8", "int8")
    pix_fmt = describe_pixels(np.dtype(np.uint16 if deep else np.uint8), spec.nchannels)
    span = sequence.numbers[-1] - sequence.numbers[0] + 1
    return MediaInfo(sequence.pattern, "sequence", spec.width, spec.height, len(sequence.numbers), fps, 1 / fps,
                     float(span / fps), 0, False, 0.0, sequence.suffix.lstrip(".").lower(), pix_fmt,
                     sequence_timecode(spec))


def probe(path: str | Path) -> MediaInfo:
    """Describe an input without decoding it all (a video decodes its first frame to learn rotation)."""
    path = Path(path)
    sequence = find_sequence(path)
    if sequence is not None:
        return _probe_sequence(sequence)
    if path.is_dir():
        images = _folder_images(path)
        if not images:
            raise InputError(path, "folder holds no images")
        first = read_rgb(images[0])
        return MediaInfo(str(path), "folder", first.shape[1], first.shape[0], len(images), None, None,
                         None, 0, False)
    if is_image_path(path):
        image = read_rgb(path)
        return MediaInfo(str(path), "image", image.shape[1], image.shape[0], 1, None, None, None, 0, False)
    container = _open_container(path)
    try:
        stream = container.streams.video[0]
        rotation = 0
        try:
            for frame in container.decode(stream):
                rotation = _rotation_of(frame)
                break
        except av.error.FFmpegError as exc:
            raise InputError(path, f"video cannot be decoded ({exc.__class__.__name__})") from None
        _check_complete(container, path)
        width, height = stream.codec_context.width, stream.codec_context.height
        if rotation in (90, 270):
            width, height = height, width
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        start_time = container.start_time / av.time_base if container.start_time is not None else 0.0
        timecode = stream.metadata.get("timecode") or container.metadata.get("timecode")
        return MediaInfo(str(path), "video", width, height, stream.frames or None,
                         stream.average_rate, stream.time_base, duration, rotation,
                         bool(container.streams.audio), start_time, stream.codec_context.name,
                         stream.codec_context.pix_fmt, timecode)
    finally:
        container.close()


REORDER_WINDOW = 4  # frames looked ahead to put timestamps back in order: up to 3 B-frames in a row


def presentation_pts(frames: Iterator[av.VideoFrame], step: int) -> Iterator[tuple[av.VideoFrame, int | None]]:
    """Decoded frames with presentation timestamps that strictly increase.

    Decoders hand frames out in presentation order, but some files give them decode-order timestamps
    (DivX/Xvid "packed B-frames" in AVI come out 1, 3, 2, 5, 4...), repeated ones, or none; encoders and
    muxers refuse those. Within a few frames such timestamps are the right set in the wrong order, so the
    smallest one ahead belongs to the frame in hand (in-order timestamps are left as they are); one
    missing, or not after its predecessor, becomes the predecessor plus one frame (`step` ticks). FFmpeg
    fixes none of this for us (its best-effort timestamp only chooses between pts and dts), hence this code.
    """
    window: deque[av.VideoFrame] = deque()
    ahead: list[int] = []  # the window's timestamps, a heap
    last: int | None = None

    def release() -> tuple[av.VideoFrame, int | None]:
        nonlocal last
        frame = window.popleft()
        pts = heapq.heappop(ahead) if frame.pts is not None else None
        if last is not None and (pts is None or pts <= last):
            pts = last + step
        last = pts if pts is not None else last
        return frame, pts

    for frame in frames:
        window.append(frame)
        if frame.pts is not None:
            heapq.heappush(ahead, frame.pts)
        if len(window) > REORDER_WINDOW:
            yield release()
    while window:
        yield release()


def _video_frames(path: Path, seek: tuple[int, int] | None = None) -> Iterator[Frame]:
    """The frames of a video; `seek` = (pts, number) starts at the frame with that timestamp, numbered
    as in a read from the start (the decoder starts at the keyframe before it)."""
    container = _open_container(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = stream.start_time or 0
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        step = max(1, round(1 / (rate * stream.time_base))) if stream.time_base else 1
        index = 0
        if seek is not None:
            container.seek(seek[0], stream=stream, backward=True)
            index = seek[1]
        damage = _Damage()
        try:
            for frame, pts in presentation_pts(damage.decode(container, stream), step):
                if seek is not None and (pts is None or pts < seek[0]):
                    continue  # decoded from the keyframe before the wanted frame
                if pts is not None and stream.time_base is not None:
                    time = float((pts - start) * stream.time_base)
                else:
                    time = index / float(rate)
                rotation = _rotation_of(frame)
                if _keeps_original(frame.format.name):
                    original = _upright(frame.to_ndarray(format=_ORIGINAL_FORMAT[_has_alpha(frame)]), rotation)
                    image = to_rgb8(original, SIXTEEN_BIT)
                    yield Frame(index, time, image, str(path), pts, original, SIXTEEN_BIT, image.copy())
                else:
                    yield Frame(index, time, _upright(_rgb(frame), rotation), str(path), pts)
                index += 1
        except av.error.FFmpegError as exc:
            raise InputError(path, f"video is damaged after frame {index} ({exc.__class__.__name__})") from None
        if index == 0:
            raise InputError(path, "video holds no decodable frames")
        damage.warn(path)
    finally:
        container.close()


class _Damage:
    """Decode packet by packet, so one damaged frame costs that frame, not the whole video; remember
    which frames (counted from 0 in decode order) were left out or came back patched by the decoder."""

    def __init__(self) -> None:
        self.skipped: list[int] = []
        self.concealed: list[int] = []

    def decode(self, container: av.container.InputContainer, stream: av.VideoStream) -> Iterator[av.VideoFrame]:
        count = 0
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                self.skipped.append(count)
                count += 1
                continue
            for frame in frames:
                if frame.is_corrupt:
                    self.concealed.append(count)
                count += 1
                yield frame

    def warn(self, path: Path) -> None:
        if self.skipped:
            warnings.warn(MediaWarning(f"{path}: {_frames(self.skipped)} could not be decoded and "
                                       "were left out (the others keep their timestamps)"), stacklevel=2)
        if self.concealed:
            warnings.warn(MediaWarning(f"{path}: {_frames(self.concealed)} damaged, patched by the "
                                       "decoder's error concealment"), stacklevel=2)


def _frames(numbers: list[int]) -> str:
    """'frame 5' or 'frames 5, 9, 12' (the first 20, then how many more)."""
    shown = ", ".join(str(n) for n in numbers[:20]) + (f" and {len(numbers) - 20} more" if len(numbers) > 20 else "")
    return f"frame{'s' if len(numbers) > 1 else ''} {shown}"


def _sequence_frames(sequence: Sequence, colorspace: str | None) -> Iterator[Frame]:
    warn_gaps(sequence)
    first = sequence.numbers[0]
    fps = sequence_fps(read_spec(sequence.path(first)))
    for index, number in enumerate(sequence.numbers):
        path = sequence.path(number)
        image, pixels, space = frame_pixels(path, colorspace)
        yield Frame(index, float((number - first) / fps), image, str(path), number - first, pixels, space,
                    image.copy(), number)


def open_video_at(path: str | Path, pts: int, number: int) -> Iterator[Frame]:
    """A video's frames from the one with timestamp `pts` (frame `number` of a read from the start)."""
    yield from _video_frames(Path(path), (pts, number))


def open_media(path: str | Path, colorspace: str | None = None) -> Iterator[Frame]:
    """Yield the frames of a video, image, image folder or image sequence, in order, one at a time.
    `colorspace` (an OCIO colour space) says what an image sequence's pixels are, where the file does not."""
    path = Path(path)
    sequence = find_sequence(path)
    if sequence is not None:
        yield from _sequence_frames(sequence, colorspace)
    elif path.is_dir():
        images = _folder_images(path)
        if not images:
            raise InputError(path, "folder holds no images")
        for index, image_path in enumerate(images):
            yield Frame(index, float(index), read_rgb(image_path), str(image_path))
    elif is_image_path(path):
        yield Frame(0, 0.0, read_rgb(path), str(path))
    else:
        yield from _video_frames(path)
