"""Image sequences (OpenImageIO) in and out: frame numbers, depth, channels, metadata, colour, untouched pixels."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as ocio
import pytest
from typer.testing import CliRunner

from swapface.cli.main import app
from swapface.demo import bundled_model
from swapface.errors import MediaWarning
from swapface.faces import make_backend
from swapface.media import open_media, probe
from swapface.media.colour import working_space
from swapface.media.depth import to_rgb8
from swapface.media.writer import open_writer, output_kind
from swapface.swap.options import SwapOptions
from swapface.swap.pipeline import swap_media

from .conftest import VIDEOS
from .video_helpers import pattern

NUMBERS = (1001, 1002, 1003)
runner = CliRunner()


def _write(path: Path, pixels: np.ndarray, fmt: str, bits: int | None = None, **attributes: object) -> None:
    spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], pixels.shape[2], fmt)
    if pixels.shape[2] == 4:
        spec.channelnames = ("R", "G", "B", "A")
        spec.alpha_channel = 3
    if bits:
        spec.attribute("oiio:BitsPerSample", bits)
    for key, value in attributes.items():
        spec.attribute(key, value)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec) and out.write_image(np.ascontiguousarray(pixels)), oiio.geterror()
    out.close()


def _read(path: Path) -> tuple[np.ndarray, oiio.ImageSpec]:
    image = oiio.ImageInput.open(str(path))
    try:
        return np.asarray(image.read_image(oiio.TypeUnknown)), oiio.ImageSpec(image.spec())
    finally:
        image.close()


def _srgb_to_acescg(rgb8: np.ndarray) -> np.ndarray:
    cfg = ocio.Config.CreateFromFile("ocio://default")
    cpu = cfg.getProcessor("sRGB Encoded Rec.709 (sRGB)", "ACEScg").getDefaultCPUProcessor()
    rgb = (rgb8.astype(np.float32) / 255).copy()
    cpu.applyRGB(rgb.reshape(-1, 3))
    return rgb


@pytest.fixture(scope="module")
def exr_plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three frames of a real face clip (scaled to 256 px) on a 640x360 gradient, as a half-float ACEScg EXR
    sequence with an alpha ramp and a tag of its own."""
    folder = tmp_path_factory.mktemp("plate")
    with av.open(str(VIDEOS / "lp_d3.mp4")) as c:
        faces = [f.reformat(256, 256).to_ndarray(format="rgb24")
                 for f in itertools.islice(c.decode(video=0), len(NUMBERS))]
    images = []
    for face in faces:
        canvas = (pattern(360, 640, 0)[..., :3] // 257).astype(np.uint8)
        canvas[60:316, 200:456] = face
        images.append(canvas)
    for number, image in zip(NUMBERS, images, strict=True):
        alpha = np.linspace(0.2, 1.0, image.shape[1], dtype=np.float32)[None, :, None].repeat(image.shape[0], 0)
        pixels = np.concatenate([_srgb_to_acescg(image), alpha], axis=-1).astype(np.float16)
        _write(folder / f"plate.{number}.exr", pixels, "half", **{"custom:shot": "sf_010"})
    return folder / "plate.####.exr"


# The watermark deliberately marks a wider area around the face (tests/test_provenance.py covers it); these
# tests are about what the face swap itself touches.
NO_MARK = SwapOptions(batch_size=4, watermark=None)


def _face_boxes(path: Path) -> list[tuple[slice, slice]]:
    """Per frame, the face's landmark box grown by half its size each side (where a swap may touch)."""
    boxes = []
    for frame in open_media(path):
        landmarks = make_backend("dlib").detect(frame.image)[0].landmarks
        (x0, y0), (x1, y1) = landmarks.min(0), landmarks.max(0)
        w, h = (x1 - x0) / 2, (y1 - y0) / 2
        boxes.append((slice(max(0, int(y0 - h)), int(y1 + h) + 1), slice(max(0, int(x0 - w)), int(x1 + w) + 1)))
    return boxes


@pytest.fixture(scope="module")
def swapped_exr(exr_plate: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("out") / "swapped.%04d.exr"
    stats = swap_media(exr_plate, bundled_model(), out, NO_MARK)
    return out, stats


def test_exr_sequence_swap_keeps_numbers_alpha_metadata_and_untouched_pixels(exr_plate: Path, swapped_exr) -> None:
    out, stats = swapped_exr
    assert stats.frames == 3 and stats.faces_swapped == 3
    boxes = _face_boxes(exr_plate)
    for number, box in zip(NUMBERS, boxes, strict=True):
        before, spec_in = _read(exr_plate.parent / f"plate.{number}.exr")
        after, spec_out = _read(out.parent / f"swapped.{number}.exr")
        assert after.dtype == np.float16 and after.shape == before.shape
        assert spec_out.channelnames == ("R", "G", "B", "A")
        assert np.array_equal(after[..., 3], before[..., 3]), "alpha changed"
        outside = np.ones(before.shape[:2], bool)
        outside[box] = False
        assert outside.mean() > 0.25
        assert np.array_equal(after[outside], before[outside]), "pixels away from the face changed"
        changed = np.any(after != before, axis=-1)
        assert changed[box].mean() > 0.1, "the face did not change"
        assert spec_out.getattribute("custom:shot") == "sf_010"
        assert spec_out.getattribute("synthetic") == "face swapped by swapface"


def test_exr_sequence_to_prores_4444_keeps_alpha_within_codec_noise(exr_plate: Path, swapped_exr,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "swapped.mov"
    swap_media(exr_plate, bundled_model(), out, replace(NO_MARK, video=_settings("prores4444")))
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.pix_fmt.startswith("yuva444p")
    source, result = list(open_media(exr_plate)), list(open_media(out))
    assert len(result) == 3
    for a, b, box in zip(source, result, _face_boxes(exr_plate), strict=True):
        assert b.original is not None and b.original.shape[-1] == 4
        display = np.round(np.clip(a.space.to_display(a.original), 0, 1) * 65535)
        alpha = np.round(a.original[..., 3].astype(np.float32) * 65535)
        diff = np.abs(b.original[..., :3] - display).mean(-1) / 65535
        outside = np.ones(diff.shape, bool)
        outside[box] = False
        assert outside.mean() > 0.25
        assert diff[outside].mean() < 0.003, "untouched pixels beyond codec noise"
        assert np.abs(b.original[..., 3] - alpha).max() / 65535 < 0.003, "alpha beyond codec noise"
        assert diff[box].mean() > 3 * diff[outside].mean() + 0.005, "the face did not change"


def _settings(codec: str):
    from swapface.media.writer import VideoSettings

    return VideoSettings(codec=codec, preset="ultrafast")


def test_sequence_patterns_and_folders_are_recognised(exr_plate: Path) -> None:
    info = probe(exr_plate)
    assert (info.kind, info.frame_count, info.width, info.pix_fmt) == ("sequence", 3, 640, "rgba64le")
    assert probe(str(exr_plate).replace("####", "%04d")).frame_count == 3
    assert probe(exr_plate.parent).kind == "sequence"
    assert output_kind("out/shot.%04d.dpx") == "sequence" and output_kind("out/shot.####.exr") == "sequence"
    assert output_kind("out/take#2.mp4") == "video"
    frames = list(open_media(exr_plate))
    assert [f.number for f in frames] == list(NUMBERS)
    assert frames[0].space is not None and frames[0].space.name == "ACEScg"  # EXR: scene-linear by default
    assert working_space() == "sRGB Encoded Rec.709 (sRGB)"


@pytest.mark.parametrize(("suffix", "fmt", "bits", "channels"), [
    (".dpx", "uint16", 10, 3), (".dpx", "uint16", 16, 3), (".tif", "uint16", None, 4), (".tif", "uint8", None, 3),
    (".exr", "float", None, 3),
])
def test_depths_round_trip_bit_exact_outside_the_change(tmp_path: Path, suffix: str, fmt: str, bits: int | None,
                                                        channels: int) -> None:
    """Read, change a block of the 8-bit picture (as a swap would), write as a folder: every other pixel,
    and alpha, is bit-identical in the file's own depth; the block changed."""
    src = tmp_path / "in"
    src.mkdir()
    for number in (7, 8):
        picture = pattern(48, 64, number, alpha=channels == 4).astype(np.float32) / 65535
        pixels = {"uint16": np.round(picture * 65535).astype(np.uint16), "uint8": np.round(picture * 255)
                  .astype(np.uint8), "float": picture}[fmt]
        _write(src / f"shot_{number:03d}{suffix}", pixels, fmt, bits)
    out = tmp_path / "out"
    info = probe(src)
    with open_writer(out, output_kind(out), info) as writer:
        for frame in open_media(src):
            image = frame.image.copy()
            image[8:24, 8:24] = 255 - image[8:24, 8:24]
            writer.write(frame, image)
    assert sorted(p.name for p in out.iterdir()) == [f"shot_007{suffix}", f"shot_008{suffix}"]
    for name in ("shot_007", "shot_008"):
        before, spec_in = _read(src / f"{name}{suffix}")
        after, spec_out = _read(out / f"{name}{suffix}")
        assert after.dtype == before.dtype and after.shape == before.shape
        assert spec_out.getattribute("oiio:BitsPerSample") == spec_in.getattribute("oiio:BitsPerSample")
        block = np.zeros(before.shape[:2], bool)
        block[8:24, 8:24] = True
        assert np.array_equal(after[~block], before[~block])
        assert np.all(np.any(after[block][..., :3] != before[block][..., :3], axis=-1))
        if channels == 4:
            assert np.array_equal(after[..., 3], before[..., 3])


def test_missing_frame_number_is_named_in_a_warning(tmp_path: Path) -> None:
    for number in (1, 2, 4, 5, 9):
        _write(tmp_path / f"s.{number:04d}.dpx", pattern(16, 16, number), "uint16", 10)
    with pytest.warns(MediaWarning, match=r"frames 3, 6, 7, 8 missing"):
        frames = list(open_media(tmp_path / "s.%04d.dpx"))
    assert [f.number for f in frames] == [1, 2, 4, 5, 9]
    assert [f.time for f in frames] == pytest.approx([n / 24 for n in (0, 1, 3, 4, 8)])


def test_float_plate_converts_through_ocio_both_ways(tmp_path: Path) -> None:
    """An ACEScg pixel reaches the swap as the sRGB it displays as, and a swapped sRGB value comes back in ACEScg."""
    rgb8 = pattern(8, 8, 0)[..., :3] // 257
    linear = _srgb_to_acescg(rgb8.astype(np.uint8))
    _write(tmp_path / "p.0001.exr", linear, "float")
    frame = next(open_media(tmp_path / "p.%04d.exr"))
    assert np.abs(frame.image.astype(int) - rgb8).max() <= 1
    back = frame.space.from_display(rgb8.astype(np.float32) / 255)
    assert np.abs(back - linear).max() < 1e-3
    assert np.array_equal(to_rgb8(back, frame.space), frame.image)


def test_cli_swaps_a_sequence_and_says_which_spaces_it_used(exr_plate: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.####.exr"
    result = runner.invoke(app, ["swap", str(exr_plate), "-m", str(bundled_model()), "-o", str(out)],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    words = result.output.split()  # the summary table wraps its cells
    assert {"ACEScg", "sRGB", "Encoded", "face", "work", "ocio://default"} <= set(words), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"cli.{n}.exr" for n in NUMBERS]
    result = runner.invoke(app, ["swap", str(exr_plate), "-m", str(bundled_model()), "-o", str(tmp_path / "x.mp4"),
                                 "--colorspace", "no such space"])
    assert result.exit_code == 1 and "no such space" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.mp4").exists()


def test_faceset_from_an_exr_plate(exr_plate: Path, tmp_path: Path) -> None:
    from swapface.faces import AlignSpec
    from swapface.faceset import Faceset
    from swapface.faceset.extract import ExtractOptions, extract

    stats = extract([exr_plate], tmp_path / "faces", ExtractOptions(spec=AlignSpec(64, "whole"), workers=1))
    assert stats.faces_kept == 3
    with Faceset.open(tmp_path / "faces") as faceset:
        crop = faceset.load_image(faceset.records()[0])
    assert crop.shape == (64, 64, 3) and 40 < crop.mean() < 220  # display-referred, not linear (dark)


def test_damaged_frame_in_a_sequence_is_one_line_and_leaves_no_frames(tmp_path: Path) -> None:
    for number in (1, 2, 3):
        _write(tmp_path / f"d.{number:04d}.exr", pattern(32, 32, number).astype(np.float32) / 65535, "half")
    damaged = tmp_path / "d.0002.exr"
    damaged.write_bytes(damaged.read_bytes()[:200])
    out = tmp_path / "out" / "o.%04d.exr"
    result = runner.invoke(app, ["swap", str(tmp_path / "d.####.exr"), "-m", str(bundled_model()), "-o", str(out)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "d.0002.exr" in lines[0], result.output
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_sequence_frame_rate_and_timecode_reach_a_video(tmp_path: Path) -> None:
    for number in (10, 11, 12):
        pixels = (pattern(32, 32, number).astype(np.float32) / 65535).astype(np.float16)
        spec = oiio.ImageSpec(32, 32, 3, "half")
        spec.attribute("FramesPerSecond", oiio.TypeDesc("rational"), (25, 1))
        spec.attribute("smpte:TimeCode", oiio.TypeDesc("timecode"), (0x01002003 + number - 10, 0))  # BCD
        out = oiio.ImageOutput.create(str(tmp_path / f"tc.{number:04d}.exr"))
        assert out.open(str(tmp_path / f"tc.{number:04d}.exr"), spec) and out.write_image(pixels)
        out.close()
    info = probe(tmp_path / "tc.####.exr")
    assert (info.fps, info.timecode) == (25, "01:00:20:03")
    movie = tmp_path / "tc.mov"
    with open_writer(movie, "video", info, _settings("prores")) as writer:
        for frame in open_media(tmp_path / "tc.####.exr"):
            writer.write(frame, frame.image)
    with av.open(str(movie)) as c:
        video = c.streams.video[0]
        assert video.metadata.get("timecode") == "01:00:20:03" and video.average_rate == 25


def test_single_exr_frame_in_and_out(exr_plate: Path, tmp_path: Path) -> None:
    """One EXR file is a one-frame sequence; `-o still.exr` writes one file with the input's header."""
    frame = exr_plate.parent / "plate.1002.exr"
    assert probe(frame).kind == "sequence" and probe(frame).frame_count == 1
    out = tmp_path / "still.exr"
    stats = swap_media(frame, bundled_model(), out, SwapOptions())
    assert stats.faces_swapped == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["still.exr"]
    before, _ = _read(frame)
    after, spec = _read(out)
    assert np.array_equal(after[..., 3], before[..., 3]) and spec.getattribute("custom:shot") == "sf_010"
    assert 0 < np.any(after != before, axis=-1).mean() < 0.5
    result = runner.invoke(app, ["swap", str(exr_plate), "-m", str(bundled_model()), "-o", str(tmp_path / "one.exr")])
    assert result.exit_code == 1 and "several frames" in result.output and not (tmp_path / "one.exr").exists()
