"""Videos in pieces: a frame index built from the packets alone, reading from a time on (seeking to
the keyframe before it), and joining separately encoded pieces into one video without re-encoding.

This is what lets a long video be swapped by many workers at once (swapface.swap.chunked): each
worker decodes only its own stretch, encodes it to its own file, and the pieces are stream-copied
into the output with the input's timestamps, audio and synthetic label, as a one-piece swap writes.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from swapface.errors import InputError, SwapfaceError
from swapface.media.reader import Frame, MediaInfo, _open_container, open_video_at
from swapface.media.writer import AUDIO_LEAD_SECONDS, Finalize, VideoSettings, VideoWriter, shift_timecode


@dataclass(frozen=True)
class VideoIndex:
    """Every frame's presentation timestamp, in order, and which frames start a GOP (keyframes)."""

    pts: list[int]
    keyframes: list[int]  # frame numbers (positions in `pts`)
    time_base: Fraction
    start: int  # the stream's start time: frame times count from here, as the reader's do

    def time(self, frame: int) -> float:
        return float((self.pts[frame] - self.start) * self.time_base)

    def frame_at(self, seconds: float) -> int:
        """The first frame at or after `seconds`."""
        target = self.start + seconds / self.time_base
        return bisect.bisect_left(self.pts, target - 1e-6)


def index_video(path: str | Path) -> VideoIndex:
    """Demux (not decode) the video stream once: fast even for a feature film."""
    path = Path(path)
    container = _open_container(path)
    try:
        stream = container.streams.video[0]
        seen: list[tuple[int, bool]] = []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                raise InputError(path, "video packets carry no timestamps, so it cannot be split into pieces "
                                       "(swap it with --workers 1)")
            seen.append((packet.pts, packet.is_keyframe))
        if not seen or stream.time_base is None:
            raise InputError(path, "video holds no frames")
        seen.sort()
        keyframes = [i for i, (_, key) in enumerate(seen) if key] or [0]
        return VideoIndex([p for p, _ in seen], keyframes, stream.time_base, stream.start_time or 0)
    except av.error.FFmpegError as exc:
        raise InputError(path, f"video is damaged ({exc.__class__.__name__})") from None
    finally:
        container.close()


def frames_from(path: str | Path, index: VideoIndex, first: int, end: int) -> Iterator[Frame]:
    """Frames number `first` to `end - 1` (numbered as in a read from the start), decoded after a
    seek to the keyframe at or before `first`."""
    for frame in open_video_at(path, index.pts[first], first):
        if frame.index >= end:
            return
        yield frame


class PieceJoiner(VideoWriter):
    """A VideoWriter fed with the packets of already-encoded pieces instead of frames: the pieces are
    copied as they are (no second encode) onto the output's timeline, with the input's audio
    interleaved, its timecode and the synthetic label, as a one-piece swap writes them."""

    def add_piece(self, piece: Path, first_pts: int) -> int:
        """Copy a piece whose first frame has the input timestamp `first_pts`; returns its frame count."""
        assert self._container is not None
        first_seconds = float(first_pts * self._time_base)
        # the piece's writer put its own first frame on this origin (see VideoWriter.write)
        origin = first_seconds if self.start > 0 else min(self.source.start_time, first_seconds)
        frames = 0
        with av.open(str(piece)) as container:
            stream = container.streams.video[0]
            if self._video is None:
                self._first_pts, self._first_seconds, self._origin = first_pts, first_seconds, origin
                self._video = self._container.add_stream_from_template(stream)
                self._video.time_base = stream.time_base
                if self.source.timecode:
                    shift = round(first_seconds * float(self._fps)) if self.start > 0 else 0
                    self._video.metadata["timecode"] = shift_timecode(self.source.timecode, shift, self._fps)
                if self.audio:
                    self._open_audio()
            offset = round((origin - self._origin) / stream.time_base)
            for packet in container.demux(stream):
                if packet.dts is None or packet.size == 0:
                    continue
                seconds = float(packet.pts * stream.time_base) + origin  # input time
                packet.pts += offset
                packet.dts += offset
                packet.stream = self._video
                self._mux_audio_until(seconds + AUDIO_LEAD_SECONDS)
                self._mux_video(packet)
                frames += 1
        self.frames_written += frames
        return frames

    def _finish(self) -> None:
        if self._video is None:
            raise SwapfaceError(f"{self.path}: no frames to write")
        self._mux_audio_until(float("inf"))


def join_pieces(pieces: list[tuple[Path, int]], output: str | Path, source: MediaInfo, settings: VideoSettings,
                start: float = 0.0, end: float | None = None, finalize: Finalize | None = None,
                tags: dict[str, str] | None = None) -> int:
    """Join `(piece file, input pts of its first frame)` in order into `output` (atomically, `finalize`d
    before the rename); returns the frames written. `settings` are the ones the pieces were encoded with."""
    with PieceJoiner(output, source, settings, start, end, finalize=finalize, tags=tags) as joiner:
        for piece, first_pts in pieces:
            joiner.add_piece(piece, first_pts)
        return joiner.frames_written
