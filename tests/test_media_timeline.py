"""Output timestamps follow the input's timeline: reordered or missing timestamps, streams that start late."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from swapface.cli.main import app
from swapface.demo import bundled_model
from swapface.media import open_media, probe
from swapface.media.writer import VideoSettings, VideoWriter, read_synthetic_tag

from .conftest import VIDEOS
from .video_helpers import write_packed_avi

runner = CliRunner()


def _timeline(path: Path) -> dict[str, tuple[float, float]]:
    """Per stream type: (start, end) in seconds, as players see them (edit lists applied)."""
    with av.open(str(path)) as c:
        return {s.type: (float(s.start_time * s.time_base), float((s.start_time + s.duration) * s.time_base))
                for s in (c.streams.video[0], c.streams.audio[0])}


def _frame_times(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [frame.pts * stream.time_base for frame in c.decode(stream)]


@pytest.fixture(scope="module")
def packed_avi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 frames of a real face clip as DivX-style MPEG-4 with packed B-frames in AVI."""
    with av.open(str(VIDEOS / "lp_d3.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in itertools.islice(c.decode(video=0), 20)]
    return write_packed_avi(tmp_path_factory.mktemp("avi") / "packed.avi", frames)


def test_packed_b_frames_come_out_in_presentation_order(packed_avi: Path) -> None:
    """FFmpeg gives these frames decode-order timestamps (1, 3, 2, 5, 4...); the reader's are in order."""
    with av.open(str(packed_avi)) as c:
        raw = [f.pts for f in c.decode(video=0)]
    assert raw != sorted(raw), "the test file no longer has the defect's timestamps"
    times = [f.time for f in open_media(packed_avi)]
    assert [t - times[0] for t in times] == pytest.approx([i / 30 for i in range(20)], abs=1e-9)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_packed_b_frame_avi_swaps(tmp_path: Path, packed_avi: Path, suffix: str) -> None:
    out = tmp_path / f"swapped{suffix}"
    result = runner.invoke(app, ["swap", str(packed_avi), "-m", str(bundled_model()), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "faces swapped" in result.output
    times = _frame_times(out)
    assert len(times) == 20
    assert [float(t - times[0]) for t in times] == pytest.approx([i / 30 for i in range(20)], abs=1e-3)
    assert read_synthetic_tag(out) == "face swapped by swapface"


def test_late_video_keeps_the_leading_audio_and_the_offset(tmp_path: Path) -> None:
    """The shared Hamilton clip's video starts 0.85 s after its audio: the copy keeps both streams'
    start, end and every frame's time, relative to each other."""
    src = VIDEOS / "fr_short_hamilton_clip.mp4"
    out = tmp_path / "copy.mp4"
    with VideoWriter(out, probe(src), VideoSettings(preset="ultrafast")) as writer:
        for frame in open_media(src):
            writer.write(frame, frame.image)
    before, after = _timeline(src), _timeline(out)
    assert before["video"][0] - before["audio"][0] > 0.8
    origin_in, origin_out = before["audio"][0], after["audio"][0]
    for kind in ("video", "audio"):
        for edge in (0, 1):
            assert after[kind][edge] - origin_out == pytest.approx(before[kind][edge] - origin_in, abs=0.002), kind
    shift = min(after["video"][0], after["audio"][0]) - min(before["video"][0], before["audio"][0])
    assert [float(t - shift) for t in _frame_times(out)] == pytest.approx([float(t) for t in _frame_times(src)],
                                                                          abs=1e-4)
