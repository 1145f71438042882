"""Write swapped frames: a video with the input's timing and audio, PNG images or folders, patch exports.

Everything is written under a temporary name and renamed on success, so the final name never holds a
half-written file; every output carries a tag saying it contains a synthetic (swapped) face.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, PngImagePlugin

from swapface.atomic import atomic_folder, atomic_path, atomic_write_text, check_folder_writable
from swapface.errors import InputError, SwapfaceError
from swapface.media.codecs import EncoderChoice, check_container_takes, choose_encoder
from swapface.media.depth import restore_display16
from swapface.media.images import IMAGE_SUFFIXES
from swapface.media.reader import Frame, MediaInfo
from swapface.media.scheduling import keep_scheduling
from swapface.media.sequences import Sequence, SequenceWriter, find_sequence, output_sequence, parse_pattern

SYNTHETIC_KEY = "synthetic"
SYNTHETIC_VALUE = "face swapped by swapface"
SYNTHETIC_COMMENT = "synthetic: contains a face swapped by swapface"
Finalize = Callable[[Path, Path], None]  # (temporary file, final name): runs before the rename, e.g. signing
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".webm"}
CONSTANT_RATE_ENCODERS = {"mpeg1video", "mpeg2video", "mpeg4"}  # refuse fine time bases (1/90000, 1/15360)
AUDIO_LEAD_SECONDS = 1.0  # audio is muxed this far ahead of the video, so the muxer buffers little


def synthetic_tags(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Container/PNG tags that label an output as synthetic: a human-readable comment and a dedicated key
    (plus `extra`, e.g. how the output's provenance is recorded)."""
    return {"comment": SYNTHETIC_COMMENT, SYNTHETIC_KEY: SYNTHETIC_VALUE, **(extra or {})}


def read_tags(path: str | Path) -> dict[str, str]:
    """The container tags of a video, or the text chunks of a PNG (keys lower-cased)."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        with Image.open(path) as image:
            return {k.lower(): v for k, v in getattr(image, "text", {}).items()}
    with av.open(str(path)) as container:
        return {k.lower(): v for k, v in container.metadata.items()}


def read_synthetic_tag(path: str | Path) -> str | None:
    """The synthetic label of a video or PNG written by swapface (None when it carries none)."""
    return read_tags(path).get(SYNTHETIC_KEY)


def output_kind(path: str | Path) -> str:
    """'video', 'image', 'sequence' (a frame-number pattern: shot.%04d.exr, shot.####.dpx) or 'folder',
    from the output path (no extension: a folder of PNGs, or of the input sequence's frames)."""
    suffix = Path(path).suffix.lower()
    if output_sequence(path) is not None:
        return "sequence"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix == ".png":
        return "image"
    if suffix in IMAGE_SUFFIXES:
        raise InputError(path, "image outputs are written as PNG (lossless, for compositing): name it .png")
    if suffix:
        raise InputError(path, f"unknown output type {suffix!r} (use {', '.join(sorted(VIDEO_SUFFIXES))}, "
                               ".png, or a folder)")
    return "folder"


def check_writable(path: str | Path) -> None:
    """Fail early, with one line, when the output cannot be created (before hours of work)."""
    path = Path(path)
    if path.is_dir() and output_kind(path) != "folder":
        raise InputError(path, "output is an existing folder, expected a file name")
    if output_kind(path) == "folder":
        check_empty_folder(path)
        return
    pattern = parse_pattern(path)
    if pattern is not None and pattern.folder.is_dir() and any(
            p.name.startswith(pattern.prefix) and p.name.endswith(pattern.suffix) for p in pattern.folder.iterdir()):
        raise InputError(path, "frames of this sequence exist already (choose another name or folder)")
    check_folder_writable(path.parent)


def check_empty_folder(path: str | Path) -> None:
    """A folder output is created whole at the end (renamed into place): it must be absent or empty
    now, and its parent writable."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InputError(path, "output folder exists and is not empty")
    check_folder_writable(path.parent)


def write_png(path: str | Path, image: np.ndarray, compress_level: int = 1, finalize: Finalize | None = None,
              tags: dict[str, str] | None = None) -> None:
    """Lossless PNG (RGB or greyscale) with the synthetic tag in a text chunk, written atomically."""
    info = PngImagePlugin.PngInfo()
    for key, value in synthetic_tags(tags).items():
        info.add_text(key, value)
    with atomic_path(path, finalize=finalize) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG", pnginfo=info,
                                                         compress_level=compress_level)


# -- video ------------------------------------------------------------------------------------------

WEBM_AUDIO = ("opus", "vorbis")  # the only audio codecs a .webm file may carry


@dataclass(frozen=True)
class VideoSettings:
    """Encoder choice. H.264 CRF 18 is visually lossless for most footage; the preset trades speed.
    `codec` is one of swapface.media.codecs.CODEC_CHOICES ("auto": VP9 for .webm, else H.264; "same":
    like the input) or an FFmpeg encoder name."""

    codec: str = "auto"
    crf: int = 18
    preset: str = "veryfast"

    def choose(self, path: Path, source: MediaInfo, width: int, height: int) -> EncoderChoice:
        return choose_encoder(self.codec, path.suffix.lower(), width, height, source.codec, source.pix_fmt,
                              self.crf, self.preset, source.fps)


def shift_timecode(timecode: str, frames: int, fps: Fraction) -> str:
    """A non-drop-frame SMPTE timecode `frames` later (a --start cut moves the first frame's timecode).
    Drop-frame timecodes (with ';') are returned as they are: their frame counting skips numbers."""
    parts = timecode.split(":")
    if frames == 0 or ";" in timecode or len(parts) != 4 or not all(p.isdigit() for p in parts):
        return timecode
    base = round(float(fps))
    hours, minutes, seconds, frame = (int(p) for p in parts)
    total = ((hours * 60 + minutes) * 60 + seconds) * base + frame + frames
    frame, total = total % base, total // base
    return f"{total // 3600 % 24:02d}:{total // 60 % 60:02d}:{total % 60:02d}:{frame:02d}"


def check_audio_fits(path: str | Path, source: MediaInfo) -> None:
    """Refuse, before any work, a container that cannot carry the input's audio (WebM takes no AAC)."""
    if Path(path).suffix.lower() != ".webm" or not source.has_audio:
        return
    with av.open(source.path) as container:
        codec = container.streams.audio[0].codec_context.name
    if codec not in WEBM_AUDIO:
        raise InputError(path, f"a .webm file cannot carry the input's {codec} audio: write .mp4, .mov or .mkv")


class VideoWriter:
    """Stream frames into a video that keeps the input's timestamps, frame rate and audio.

    Frames are given with their input `pts`; the output keeps the container's timeline: every stream
    keeps its start, so a video that starts after its audio still does, and no leading audio is lost
    (the whole timeline moves so the earliest stream starts at 0; a `--start` cut starts at 0).
    Timestamps that do not increase are moved one tick after the previous frame (muxers refuse them).
    Audio packets are copied without re-encoding, cut to the same time range and interleaved as the
    video advances. Use as a context manager: leaving it with an
    exception removes the temporary file and leaves nothing under the final name. `finalize` runs on
    the finished temporary file before the rename; `tags` join the synthetic tags.
    """

    def __init__(self, path: str | Path, source: MediaInfo, settings: VideoSettings = VideoSettings(),
                 start: float = 0.0, end: float | None = None, audio: bool = True, finalize: Finalize | None = None,
                 tags: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.finalize, self.tags = finalize, tags
        self.source = source
        self.settings = settings
        self.start, self.end = start, end
        self.audio = audio and source.has_audio
        self.frames_written = 0
        self._stack = contextlib.ExitStack()
        self._container: av.container.OutputContainer | None = None
        self._video: av.VideoStream | None = None
        self._audio_in: av.container.InputContainer | None = None
        self._audio_packets: Iterator[av.Packet] | None = None
        self._audio_out: av.AudioStream | None = None
        self._pending_audio: av.Packet | None = None
        self._first_pts: int | None = None
        self._first_seconds = 0.0  # input time of the first written frame
        self._origin = 0.0  # input time that becomes 0 in the output
        self._last_pts: int | None = None
        self._last_dts: int | None = None
        self.choice: EncoderChoice | None = None  # set with the first frame: what was written
        self._time_base = source.time_base or Fraction(1, 90000)
        self._encode_base = self._time_base  # 1/fps for codecs that only know constant frame rates
        self._fps = source.fps or Fraction(25)

    def __enter__(self) -> VideoWriter:
        # Before any work: the codec exists, suits the container and the input's pixel format.
        width, height = self.source.width, self.source.height
        check_container_takes(self.path, self.settings.choose(self.path, self.source, width, height), width, height)
        tmp = self._stack.enter_context(atomic_path(self.path, finalize=self.finalize))
        options = {"movflags": "use_metadata_tags"} if self.path.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
        try:
            self._container = self._stack.enter_context(av.open(str(tmp), "w", options=options))
        except (av.error.FFmpegError, OSError) as exc:
            self._stack.close()
            raise InputError(self.path, f"cannot write video ({exc.__class__.__name__})") from None
        self._container.metadata.update(synthetic_tags(self.tags))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self._finish()
            except BaseException as error:
                self._close(type(error), error, error.__traceback__)
                raise
        self._close(exc_type, exc, tb)

    def _close(self, exc_type, exc, tb) -> None:
        if self._audio_in is not None:
            self._audio_in.close()
        self._stack.__exit__(exc_type, exc, tb)

    def _open_video(self, width: int, height: int) -> None:
        assert self._container is not None
        self.choice = self.settings.choose(self.path, self.source, width, height)
        try:
            stream = self._container.add_stream(self.choice.encoder, rate=self._fps)
        except (av.error.FFmpegError, ValueError) as exc:
            raise SwapfaceError(f"codec {self.settings.codec!r} is not available ({exc})") from None
        stream.width, stream.height = width, height
        stream.pix_fmt = self.choice.pix_fmt
        if self.choice.encoder in CONSTANT_RATE_ENCODERS:
            self._encode_base = 1 / self._fps
        stream.codec_context.time_base = self._encode_base
        stream.time_base = self._encode_base
        stream.options = dict(self.choice.options)
        if self.source.timecode:
            frames = round(self._first_seconds * float(self._fps)) if self.start > 0 else 0
            stream.metadata["timecode"] = shift_timecode(self.source.timecode, frames, self._fps)
        self._video = stream
        if self.audio:
            self._open_audio()

    def _open_audio(self) -> None:
        assert self._container is not None
        self._audio_in = av.open(self.source.path)
        source = self._audio_in.streams.audio[0]
        try:
            self._audio_out = self._container.add_stream_from_template(source)
        except (av.error.FFmpegError, ValueError) as exc:
            raise SwapfaceError(f"{self.path}: cannot carry the audio over ({exc})") from None
        self._audio_packets = self._audio_in.demux(source)

    def write(self, frame: Frame, image: np.ndarray) -> None:
        """Encode `image` at `frame`'s timestamp (frames must come in order)."""
        pts_in = round(frame.index / (self._fps * self._time_base)) if frame.pts is None else frame.pts
        if self._first_pts is None:
            self._first_pts = pts_in
            self._first_seconds = float(pts_in * self._time_base)
            self._origin = self._first_seconds if self.start > 0 else min(self.source.start_time, self._first_seconds)
        if self._video is None:
            self._open_video(image.shape[1], image.shape[0])
        assert self._video is not None and self._container is not None
        pts = round((pts_in * self._time_base - Fraction(self._origin)) / self._encode_base)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        if frame.original is not None and frame.space is not None and frame.untouched is not None:
            data = restore_display16(frame.original, frame.space, image, frame.untouched)  # deep, or alpha
            video_frame = av.VideoFrame.from_ndarray(data, format="rgba64le" if data.shape[-1] == 4 else "rgb48le")
        else:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        video_frame.pts = pts
        video_frame.time_base = self._encode_base
        # the encoder opens on its first frame (SVT-AV1 then makes threads real-time)
        with keep_scheduling() if self.frames_written == 0 else contextlib.nullcontext():
            packets = self._video.encode(video_frame)
        for packet in packets:
            self._mux_video(packet)
        self.frames_written += 1
        self._mux_audio_until(float(pts_in * self._time_base) + AUDIO_LEAD_SECONDS)

    def _audio_end(self) -> float:
        """Absolute input time where the copied audio stops (the end of the cut, or the end of the file)."""
        if self.end is None:
            return float("inf")
        assert self._first_pts is not None
        return self._first_seconds + (self.end - self.start)

    def _mux_audio_until(self, until: float) -> None:
        if self._audio_packets is None or self._audio_out is None:
            return
        assert self._container is not None
        stop = min(until, self._audio_end())
        while True:
            packet = self._pending_audio or next(self._audio_packets, None)
            self._pending_audio = None
            if packet is None:
                self._audio_packets = None
                return
            if packet.dts is None or packet.pts is None:
                continue  # the demuxer's flush packet
            seconds = float(packet.pts * packet.time_base)
            if seconds >= stop:
                self._pending_audio = packet
                return
            if seconds < self._origin - 1e-6 and self.start > 0:
                continue  # before a --start cut
            shift = round(self._origin / packet.time_base)
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = self._audio_out
            self._container.mux(packet)

    def _finish(self) -> None:
        if self._video is None or self._container is None:
            raise SwapfaceError(f"{self.path}: no frames to write")
        for packet in self._video.encode():
            self._mux_video(packet)
        self._mux_audio_until(float("inf"))

    def _mux_video(self, packet: av.Packet) -> None:
        """Mux an encoded packet, mending a decode timestamp the muxer would refuse.

        libx265 derives its first decode timestamps from a frame its B-frame delay has not seen when a
        clip is shorter than that delay (a 2-frame cut), and then hands out uninitialised values; a
        decode time after the packet's own presentation, or not after the last one, is moved to one
        tick after the last, or to the presentation time where that comes first.
        """
        assert self._container is not None
        dts, pts = packet.dts, packet.pts
        if pts is not None and (dts is None or dts > pts or (self._last_dts is not None and dts <= self._last_dts)):
            packet.dts = min(pts, self._last_dts + 1) if self._last_dts is not None else pts
        self._last_dts = packet.dts
        self._container.mux(packet)


def open_writer(path: str | Path, kind: str, source: MediaInfo, settings: VideoSettings = VideoSettings(),
                start: float = 0.0, end: float | None = None, finalize: Finalize | None = None,
                tags: dict[str, str] | None = None) -> VideoWriter | ImageWriter | SequenceWriter:
    """The writer for an output of `kind` (see output_kind): a video, an image sequence (a pattern, or a
    folder output of a sequence input, keeping its names, format and depth), PNG image(s). `finalize`
    and `tags` (signing, see swapface.provenance) apply to videos and PNGs."""
    path = Path(path)
    if kind == "video":
        return VideoWriter(path, source, settings, start, end, finalize=finalize, tags=tags)
    if kind == "sequence":
        pattern = output_sequence(path)
        assert pattern is not None
        return SequenceWriter(pattern)
    if kind == "folder" and source.kind == "sequence":
        sequence = find_sequence(source.path)
        assert sequence is not None
        return SequenceWriter(Sequence(path, sequence.prefix, sequence.suffix, sequence.padding))
    return ImageWriter(path, single=kind == "image", finalize=finalize, tags=tags)


# -- images -----------------------------------------------------------------------------------------

class ImageWriter:
    """One PNG per frame, for compositing tools: a single image, or a folder of numbered frames.

    A folder is filled under a temporary name and renamed when complete. Frames from an image folder
    keep their file names (as .png); video frames are named frame_000000.png by input frame index.
    """

    def __init__(self, path: str | Path, single: bool, finalize: Finalize | None = None,
                 tags: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.single = single
        self.finalize, self.tags = finalize, tags  # per PNG, before its rename (a folder's frames each)
        self.frames_written = 0
        self._stack = contextlib.ExitStack()
        self._folder: Path | None = None

    def __enter__(self) -> ImageWriter:
        if not self.single:
            self._folder = self._stack.enter_context(atomic_folder(self.path))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self.frames_written == 0:
            error = SwapfaceError(f"{self.path}: no frames to write")
            self._stack.__exit__(SwapfaceError, error, None)
            raise error
        self._stack.__exit__(exc_type, exc, tb)

    def write(self, frame: Frame, image: np.ndarray) -> None:
        if self.single:
            if self.frames_written:
                raise SwapfaceError(f"{self.path}: the input has several frames; give a folder or a video "
                                    "as output")
            write_png(self.path, image, finalize=self.finalize, tags=self.tags)
        else:
            assert self._folder is not None
            write_png(self._folder / frame_file_name(frame), image, finalize=self.finalize, tags=self.tags)
        self.frames_written += 1


def frame_file_name(frame: Frame) -> str:
    """Output name of a frame: the input image's stem, or frame_NNNNNN for video frames."""
    source = Path(frame.source)
    if source.suffix.lower() in IMAGE_SUFFIXES:
        return source.stem + ".png"
    return f"frame_{frame.index:06d}.png"


class PatchWriter:
    """Per-face exports for artists: the generated face crop, its mask, and the crop's matrix.

    For frame F (named as the frame outputs are: frame_000042, or the input image's stem) and face K:
    F_K_face.png (RGB at the model's resolution), F_K_mask.png (8-bit alpha) and F_K.json (2x3 matrix
    taking frame pixels to crop pixels, frame time, crop size), enough to
    re-composite the face in another tool with the inverse warp.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stack = contextlib.ExitStack()
        self._folder: Path | None = None

    def __enter__(self) -> PatchWriter:
        self._folder = self._stack.enter_context(atomic_folder(self.path))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stack.__exit__(exc_type, exc, tb)

    def write(self, frame: Frame, face_index: int, face: np.ndarray, mask: np.ndarray, matrix: np.ndarray,
              **extra: object) -> None:
        assert self._folder is not None
        stem = f"{Path(frame_file_name(frame)).stem}_{face_index}"
        write_png(self._folder / f"{stem}_face.png", face)
        write_png(self._folder / f"{stem}_mask.png", np.clip(mask * 255 + 0.5, 0, 255).astype(np.uint8))
        meta = {"frame": frame.index, "time": frame.time, "source": frame.source, "face": face_index,
                "crop_size": int(face.shape[0]), "matrix": np.asarray(matrix, float).tolist(),
                "matrix_maps": "frame pixels -> crop pixels", **extra}
        atomic_write_text(self._folder / f"{stem}.json", json.dumps(meta, indent=1))
