"""A corpus of small generated clips, one per kind of footage the field uses, through the media layer.

Each clip is read, a block is changed (as a swap changes a face), and written back; the output must keep
the frame count, timestamps, size, bit depth/chroma/alpha (where the codec allows), audio, timecode and
the synthetic tag, with the untouched pixels within codec noise and the changed block changed.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from swapface.cli.main import app
from swapface.errors import InputError, MediaWarning
from swapface.media import Frame, open_media, probe
from swapface.media.codecs import pixel_shape
from swapface.media.writer import VideoSettings, VideoWriter, read_synthetic_tag

from .video_helpers import set_display_rotation, write_pattern_clip

runner = CliRunner()
TIMECODE = "01:00:10:05"

# id: input (suffix, encoder, pix_fmt, size, extra), output suffix
CASES = {
    "h264-mp4-aac": (".mp4", "libx264", "yuv420p", (64, 64), {"audio": "aac"}, ".mp4"),
    "hevc-10bit-mov": (".mov", "libx265", "yuv420p10le", (64, 64), {"options": {"x265-params": "log-level=error"}},
                       ".mov"),
    "prores422hq-mov-timecode-pcm": (".mov", "prores_ks", "yuv422p10le", (64, 64),
                                     {"options": {"profile": "3"}, "metadata": {"timecode": TIMECODE},
                                      "audio": "pcm_s24le"}, ".mov"),
    "prores4444-alpha": (".mov", "prores_ks", "yuva444p10le", (64, 64), {"options": {"profile": "4"}}, ".mov"),
    "dnxhr-hqx-mxf": (".mxf", "dnxhd", "yuv422p10le", (256, 144), {"options": {"profile": "dnxhr_hqx"}}, ".mov"),
    "ffv1-16bit-444-mkv": (".mkv", "ffv1", "yuv444p16le", (64, 64), {}, ".mkv"),
    "mpeg2-422-ts-mp2": (".ts", "mpeg2video", "yuv422p", (64, 64), {"audio": "mp2"}, ".mkv"),
    "mpeg4-avi": (".avi", "mpeg4", "yuv420p", (64, 64), {}, ".mp4"),
    "vp9-webm-opus": (".webm", "libvpx-vp9", "yuv420p", (64, 64), {"audio": "libopus"}, ".webm"),
    "mjpeg-avi": (".avi", "mjpeg", "yuvj422p", (64, 64), {}, ".mkv"),
    "av1-10bit-mp4": (".mp4", "libsvtav1", "yuv420p10le", (64, 64), {}, ".mkv"),
    "h264-444-mkv": (".mkv", "libx264", "yuv444p", (64, 64), {}, ".mkv"),
    "vfr-mkv": (".mkv", "libx264", "yuv420p", (64, 64), {"pts": [0, 40, 80, 200, 240, 400]}, ".mkv"),
    "odd-size": (".mkv", "libx264", "yuv444p", (63, 47), {}, ".mp4"),
}
BLOCK = (slice(8, 24), slice(8, 24))  # the "face" the fake swap changes


def _fake_swap(frame: Frame) -> np.ndarray:
    image = frame.image.copy()
    image[BLOCK] = 255 - image[BLOCK]
    return image


def _sixteen(frame: Frame) -> np.ndarray:
    """A frame's colour as 16-bit RGB (its original when deeper than 8 bits)."""
    if frame.original is not None:
        return frame.original[..., :3].astype(np.int64)
    return frame.image.astype(np.int64) * 257


def _copy(src: Path, out: Path, codec: str = "same", change: bool = True) -> None:
    with VideoWriter(out, probe(src), VideoSettings(codec=codec, preset="ultrafast")) as writer:
        for frame in open_media(src):
            writer.write(frame, _fake_swap(frame) if change else frame.image)


def _stream_facts(path: Path) -> dict:
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        audio = c.streams.audio[0] if c.streams.audio else None
        frames = list(c.decode(video))
        facts = {"pix_fmt": video.codec_context.pix_fmt, "codec": video.codec_context.name,
                 "times": [f.pts * video.time_base for f in frames], "timecode": video.metadata.get("timecode")}
        if audio is not None:
            c.seek(0)
            packets = [p for p in c.demux(audio) if p.pts is not None]
            facts["audio"] = float(sum(p.duration for p in packets) * audio.time_base)
            facts["audio_codec"] = audio.codec_context.name
        return facts


@pytest.mark.parametrize("case", CASES)
def test_corpus_clip_round_trip(tmp_path: Path, case: str) -> None:
    suffix, encoder, pix_fmt, size, extra, out_suffix = CASES[case]
    src = write_pattern_clip(tmp_path / f"in{suffix}", encoder, pix_fmt, size, **extra)
    out = tmp_path / f"out{out_suffix}"
    _copy(src, out)
    before, after = _stream_facts(src), _stream_facts(out)
    assert len(after["times"]) == len(before["times"])
    assert [t - after["times"][0] for t in after["times"]] == [t - before["times"][0] for t in before["times"]]
    info_in, info_out = probe(src), probe(out)
    assert (info_out.width, info_out.height) == (info_in.width, info_in.height) == size
    assert after["codec"] == before["codec"], "--codec same makes the input's codec"
    shape_in, shape_out = pixel_shape(before["pix_fmt"]), pixel_shape(after["pix_fmt"])
    assert shape_out.depth >= shape_in.depth and shape_out.chroma_rank >= shape_in.chroma_rank, after["pix_fmt"]
    assert shape_out.alpha == shape_in.alpha
    if "audio" in before:
        assert after["audio"] == pytest.approx(before["audio"], abs=0.025)
    if "timecode" in extra.get("metadata", {}):
        assert after["timecode"] == TIMECODE
    assert read_synthetic_tag(out) == "face swapped by swapface"
    inside = np.zeros(size[::-1], bool)
    inside[BLOCK] = True
    far = np.ones(size[::-1], bool)  # a transform block or two away from the change (codecs ring near edges)
    far[:40, :40] = False
    _copy(src, tmp_path / f"plain{out_suffix}", change=False)  # the codec noise of a plain re-encode
    for a, b, c in zip(open_media(src), open_media(out), open_media(tmp_path / f"plain{out_suffix}"), strict=True):
        diff = np.abs(_sixteen(a) - _sixteen(b)).mean(-1) / 65535
        noise = np.abs(_sixteen(a) - _sixteen(c)).mean(-1) / 65535
        assert diff[far].mean() < 1.5 * noise[far].mean() + 0.002, "untouched pixels moved beyond codec noise"
        assert diff[inside].mean() > 0.3, "the changed block did not come through"
        if a.original is not None and a.original.shape[-1] == 4:
            alpha = np.abs(a.original[..., 3].astype(int) - b.original[..., 3]) / 65535
            assert alpha.max() < 0.002, "alpha changed"


@pytest.mark.parametrize(("codec", "suffix", "expected"), [
    ("h264", ".mkv", "422"), ("hevc", ".mkv", "422"), ("prores", ".mov", "422"), ("prores4444", ".mov", "444"),
    ("dnxhr", ".mov", "422"), ("ffv1", ".mkv", "422"),
])
def test_output_codecs_keep_10bit_422(tmp_path: Path, codec: str, suffix: str, expected: str) -> None:
    """A 10-bit 4:2:2 ProRes source: every output codec keeps 10 bits and at least its chroma."""
    src = write_pattern_clip(tmp_path / "in.mov", "prores_ks", "yuv422p10le", (256, 144), frames=3,
                             metadata={"timecode": TIMECODE})
    out = tmp_path / f"out{suffix}"
    _copy(src, out, codec)
    facts = _stream_facts(out)
    shape = pixel_shape(facts["pix_fmt"])  # FFmpeg's ProRes decoder says 12-bit for 4444
    assert shape.depth >= 10 and shape.chroma == expected, facts["pix_fmt"]
    assert len(facts["times"]) == 3
    if suffix == ".mov":
        assert facts["timecode"] == TIMECODE


def test_8bit_input_stays_8bit_in_hevc(tmp_path: Path) -> None:
    src = write_pattern_clip(tmp_path / "in.mp4", "libx264", "yuv420p", frames=2)
    # a clip shorter than libx265's B-frame delay gets uninitialised decode times from it, now and then
    # (a quarter of tries in one process): written again and again, every try must mux
    for attempt in range(24):
        _copy(src, tmp_path / f"out{attempt}.mkv", "hevc")
        facts = _stream_facts(tmp_path / f"out{attempt}.mkv")
        assert (facts["pix_fmt"], len(facts["times"])) == ("yuv420p", 2)


def test_rotated_phone_clip_comes_out_upright(tmp_path: Path) -> None:
    src = write_pattern_clip(tmp_path / "in.mp4", "libx264", "yuv420p", (64, 48), frames=3)
    set_display_rotation(src, 90)
    out = tmp_path / "out.mp4"
    _copy(src, out)
    info = probe(out)
    assert (info.width, info.height, info.rotation) == (48, 64, 0)


def test_container_that_cannot_hold_the_codec_is_refused_before_work(tmp_path: Path) -> None:
    src = write_pattern_clip(tmp_path / "in.mov", "prores_ks", "yuv422p10le", frames=2)
    out = tmp_path / "out.webm"
    with pytest.raises(InputError, match="cannot write prores"), VideoWriter(out, probe(src),
                                                                           VideoSettings(codec="prores")):
        pass
    assert not list(tmp_path.glob(".out*")) and not out.exists()


def _damage_packet(path: Path, number: int) -> None:
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    pos, size = packets[number]
    data = bytearray(path.read_bytes())
    for k in range(pos + size // 3, pos + size - 4):
        data[k] = (data[k] * 7 + 13) % 256
    path.write_bytes(bytes(data))


def test_corrupt_frame_in_the_middle_is_left_out_with_a_warning_naming_it(tmp_path: Path) -> None:
    src = write_pattern_clip(tmp_path / "in.avi", "mjpeg", "yuvj422p", frames=10)
    _damage_packet(src, 5)
    with pytest.warns(MediaWarning, match="frame 5 could not be decoded"):
        frames = list(open_media(src))
    assert len(frames) == 9
    assert [f.time for f in frames] == pytest.approx([i / 25 for i in range(10) if i != 5])


def test_concealed_frame_is_kept_with_a_warning_naming_it(tmp_path: Path) -> None:
    src = write_pattern_clip(tmp_path / "in.mov", "prores_ks", "yuv422p10le", frames=8)
    _damage_packet(src, 3)
    with pytest.warns(MediaWarning, match="frame 3 damaged"):
        assert len(list(open_media(src))) == 8


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_bad_footage_is_one_line_and_no_output(tmp_path: Path, damage: str) -> None:
    src = write_pattern_clip(tmp_path / "in.mp4", "libx264", "yuv420p", frames=20)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00" * 64 + data[64:])
    out = tmp_path / "out.mp4"
    model = Path(__file__).resolve().parents[1] / "swapface" / "assets" / "demo_model"
    result = runner.invoke(app, ["swap", str(src), "-m", str(model), "-o", str(out)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "in.mp4" in lines[0], result.output
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_timestamps_in_fine_time_base_survive(tmp_path: Path) -> None:
    """VFR at millisecond precision into mp4: the writer keeps the input's time base."""
    src = write_pattern_clip(tmp_path / "in.mkv", "libx264", "yuv420p", pts=[0, 33, 67, 100, 167, 1000])
    out = tmp_path / "out.mp4"
    _copy(src, out)
    assert [t - Fraction(0) for t in _stream_facts(out)["times"]] == [Fraction(p, 1000) for p in
                                                                      (0, 33, 67, 100, 167, 1000)]
