"""End-to-end swap on real clips with a tiny model trained here (CPU, 64 px, a few seconds)."""

from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from swapface.cli import swap as swap_cli
from swapface.cli.main import app
from swapface.errors import InputError, SwapfaceError
from swapface.faces import AlignSpec, alignment_matrix, make_backend, transform_points
from swapface.faces.masks import hull_mask
from swapface.faceset import Faceset
from swapface.media import open_media, probe
from swapface.media.writer import VideoWriter, read_synthetic_tag
from swapface.model import SwapAutoencoder, preset
from swapface.modeldir import save_model
from swapface.swap.options import SwapOptions
from swapface.swap.pipeline import swap_media

from .conftest import STILLS, VIDEOS

CLIP_FRAMES = 40
BLANK = range(20, 24)  # frames of the test clip with the face blanked out (a black frame)
runner = CliRunner()


def _faces(path: Path, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A faceset's crops at `size` px in [0, 1], with their landmark-hull masks."""
    with Faceset.open(path) as faceset:
        records = faceset.records()
        scale = size / faceset.spec.size
        images = [cv2.resize(faceset.load_image(r), (size, size), interpolation=cv2.INTER_AREA) for r in records]
        masks = [hull_mask(r.crop_landmarks * scale, (size, size)) for r in records]
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    return x, torch.from_numpy(np.stack(masks))[:, None]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, faceset_a: Path, faceset_b: Path) -> Path:
    """The tiny preset (64 px, whole coverage like the facesets) trained briefly on A and B:
    reconstruction L1 inside the face plus the mask against the landmark hull."""
    torch.manual_seed(0)
    config = preset("tiny", coverage="whole")
    model = SwapAutoencoder(config)
    data = {"a": _faces(faceset_a, config.resolution), "b": _faces(faceset_b, config.resolution)}
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(80):
        loss = torch.zeros(())
        for name, (x, m) in data.items():
            pick = torch.randint(len(x), (8,), generator=generator)
            rgb, mask = model.decode(model.encode(x[pick])[0], name)
            loss = loss + ((rgb - x[pick]).abs() * (0.2 + m[pick])).mean() + (mask - m[pick]).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out = tmp_path_factory.mktemp("model") / "tiny"
    save_model(out, model.eval())
    return out


def _cut_clip(src: Path, dst: Path, frames: int, blank: range = range(0)) -> None:
    """The first `frames` frames of `src` (some blanked to black) with its audio for the same time."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        vout.codec_context.time_base = vin.time_base
        vout.options = {"crf": "16", "preset": "veryfast"}
        ain = inp.streams.audio[0] if inp.streams.audio else None
        aout = out.add_stream_from_template(ain) if ain is not None else None  # streams before any packet
        end = None
        for i, frame in enumerate(inp.decode(vin)):
            if i == frames:
                end = float(frame.pts * vin.time_base)
                break
            image = frame.to_ndarray(format="rgb24")
            if i in blank:
                image[:] = 0
            new = av.VideoFrame.from_ndarray(image, format="rgb24")
            new.pts, new.time_base = frame.pts, vin.time_base
            for packet in vout.encode(new):
                out.mux(packet)
        for packet in vout.encode():
            out.mux(packet)
        if ain is not None:
            inp.seek(0)
            for packet in inp.demux(ain):
                if packet.dts is None or float(packet.pts * packet.time_base) >= end:
                    continue
                packet.stream = aout
                out.mux(packet)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 frames (1.33 s) of lp_d3.mp4 (512x512, 30 fps, AAC audio), frames 20-23 blanked."""
    path = tmp_path_factory.mktemp("clips") / "d3_blank.mp4"
    _cut_clip(VIDEOS / "lp_d3.mp4", path, CLIP_FRAMES, BLANK)
    return path


def _timestamps(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [frame.pts * stream.time_base for frame in c.decode(stream)]


def _durations(path: Path) -> tuple[float, float | None]:
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        audio = c.streams.audio[0] if c.streams.audio else None
        return (float(video.duration * video.time_base),
                float(audio.duration * audio.time_base) if audio is not None else None)


@pytest.fixture(scope="module")
def swapped(tmp_path_factory: pytest.TempPathFactory, clip: Path, model_dir: Path) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("swapped") / "out.mp4"
    stats = swap_media(clip, model_dir, out, SwapOptions(batch_size=4))
    return out, stats


def _face_box(image: np.ndarray) -> np.ndarray:
    faces = make_backend("dlib").detect(image)
    assert len(faces) == 1
    return faces[0].landmarks


def test_output_keeps_frames_timing_resolution_audio_and_tag(clip: Path, swapped) -> None:
    out, stats = swapped
    src, dst = probe(clip), probe(out)
    assert (dst.width, dst.height) == (src.width, src.height) == (512, 512)
    assert dst.frame_count == src.frame_count == CLIP_FRAMES
    assert stats.frames == CLIP_FRAMES
    assert _timestamps(out) == _timestamps(clip)
    (v_in, a_in), (v_out, a_out) = _durations(clip), _durations(out)
    assert v_out == pytest.approx(v_in, abs=1e-6)
    assert a_in is not None and a_in > 1.0
    assert a_out == pytest.approx(a_in, abs=1e-6)
    assert dst.fps == src.fps
    assert read_synthetic_tag(out) == "face swapped by swapface"
    assert not list(out.parent.glob(".*part*")), "temporary file left behind"


def _reencoded(clip: Path, out: Path) -> list[np.ndarray]:
    """The clip through the same encoder and settings, untouched: the codec noise to compare with."""
    with VideoWriter(out, probe(clip)) as writer:
        for frame in open_media(clip):
            writer.write(frame, frame.image)
    return [f.image for f in open_media(out)]


def test_face_changes_background_and_faceless_frames_do_not(tmp_path: Path, clip: Path, swapped) -> None:
    out, stats = swapped
    before = [f.image for f in open_media(clip)]
    after = [f.image for f in open_media(out)]
    copy = _reencoded(clip, tmp_path / "copy.mp4")
    assert stats.frames_swapped == CLIP_FRAMES - len(BLANK)
    for i in (0, 10, 30, 39):
        landmarks = _face_box(before[i])
        face = hull_mask(landmarks, before[i].shape[:2]) > 0.5
        inner = cv2.erode(face.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
        # Far from the face: more than a third of the face's width outside its outline.
        grow = int((landmarks[:, 0].max() - landmarks[:, 0].min()) / 3)
        near = cv2.dilate(face.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2))
        far = near == 0
        diff = np.abs(after[i].astype(np.int16) - before[i].astype(np.int16)).max(2)
        noise = np.abs(copy[i].astype(np.int16) - before[i].astype(np.int16)).max(2)
        assert far.sum() > 0.2 * far.size
        assert diff[far].mean() < 1.2 * noise[far].mean() + 0.2, "pixels far from the face changed"
        assert np.percentile(diff[far], 99) <= np.percentile(noise[far], 99) + 2
        assert diff[inner].mean() > 8 * noise[inner].mean(), "the face region did not change"
    for i in BLANK:
        assert np.abs(after[i].astype(np.int16) - copy[i]).max() <= 2, "a frame without a face was altered"


def test_swap_respects_time_range_with_audio(tmp_path: Path, model_dir: Path) -> None:
    src = VIDEOS / "lp_d3.mp4"
    out = tmp_path / "range.mp4"
    stats = swap_media(src, model_dir, out, SwapOptions(start=1.0, end=1.5, detect_every=3))
    assert stats.frames == 15
    times = [float(t) for t in _timestamps(out)]
    assert times == pytest.approx([i / 30 for i in range(15)], abs=1e-6)
    video, audio = _durations(out)
    assert video == pytest.approx(0.5, abs=1e-6)
    assert audio == pytest.approx(0.5, abs=0.03)  # cut at AAC packet (23 ms) boundaries


def test_reference_swaps_only_the_matching_person(tmp_path: Path, clip: Path, model_dir: Path) -> None:
    from swapface.faceset.extract import reference_embedding

    same = tmp_path / "same.png"
    cv2.imwrite(str(same), cv2.cvtColor(next(open_media(VIDEOS / "lp_d3.mp4")).image, cv2.COLOR_RGB2BGR))
    other = SwapOptions(reference=reference_embedding(STILLS / "df_damon_1.jpg"), end=0.5)
    with pytest.raises(InputError, match="no face of the --reference person"):  # nobody to swap: an error
        swap_media(clip, model_dir, tmp_path / "ref.mp4", other)
    assert not (tmp_path / "ref.mp4").exists()
    for options, expected in ((replace(other, allow_no_faces=True), 0),
                              (SwapOptions(reference=reference_embedding(same), end=0.5), 15)):
        stats = swap_media(clip, model_dir, tmp_path / "ref.mp4", options)
        assert stats.frames == 15 and stats.faces_swapped == expected


def test_image_folder_and_patch_outputs(tmp_path: Path, model_dir: Path) -> None:
    stills = tmp_path / "stills"
    stills.mkdir()
    for name in ("lp_d9.jpg", "lp_d8.jpg"):
        (stills / name).write_bytes((STILLS / name).read_bytes())
    out, patches = tmp_path / "frames", tmp_path / "patches"
    stats = swap_media(stills, model_dir, out, SwapOptions(patches=patches, blend="poisson", color="histogram"))
    assert stats.faces_swapped == 1  # lp_d8.jpg has no face the detector finds
    assert sorted(p.name for p in out.iterdir()) == ["lp_d8.png", "lp_d9.png"]
    assert read_synthetic_tag(out / "lp_d9.png") == "face swapped by swapface"
    for name, changed in (("lp_d9", True), ("lp_d8", False)):
        original, result = (next(open_media(p)).image for p in (STILLS / f"{name}.jpg", out / f"{name}.png"))
        assert original.shape == result.shape
        assert np.array_equal(original, result) != changed, name  # PNG is lossless: untouched means equal
    assert sorted(p.suffix for p in patches.iterdir()) == [".json", ".png", ".png"]
    crop = next(open_media(patches / "lp_d9_0_face.png")).image
    assert crop.shape == (64, 64, 3)
    meta = json.loads((patches / "lp_d9_0.json").read_text())
    assert np.array(meta["matrix"]).shape == (2, 3) and meta["crop_size"] == 64


def test_keyframes_detected_ahead_in_threads_give_the_same_frames(tmp_path: Path, clip: Path,
                                                                  model_dir: Path) -> None:
    """Detection ahead only moves work to other threads: every output pixel is as with inline detection."""
    outputs, stats = {}, {}
    for workers in (0, 2):
        outputs[workers] = tmp_path / f"workers{workers}"
        stats[workers] = swap_media(clip, model_dir, outputs[workers], SwapOptions(batch_size=4, detect_workers=workers,
                                                                                    end=0.8))
    assert stats[0].times.seconds["detect ahead"] == 0 < stats[2].times.seconds["detect ahead"]
    assert stats[0].faces_swapped == stats[2].faces_swapped == 24 - len(BLANK)
    names = sorted(p.name for p in outputs[0].iterdir())
    assert len(names) == 24 and names == sorted(p.name for p in outputs[2].iterdir())
    for name in names:
        a, b = (next(open_media(outputs[w] / name)).image for w in (0, 2))
        assert np.array_equal(a, b), name


@pytest.mark.parametrize("case", ["no model", "corrupt model", "resolution mismatch", "unreadable video",
                                  "output not writable", "unknown blend", "unknown precision", "empty time range"])
def test_bad_input_one_line_error_and_no_output(tmp_path: Path, clip: Path, model_dir: Path, case: str) -> None:
    model, video, out, extra = model_dir, clip, tmp_path / "out.mp4", []
    if case == "unknown blend":
        extra = ["--blend", "smudge"]
    elif case == "unknown precision":
        extra = ["--precision", "fp16"]
    elif case == "empty time range":
        extra = ["--start", "1", "--end", "0.5"]
    elif case == "no model":
        model = tmp_path / "missing_model"
    elif case == "corrupt model":
        model = tmp_path / "corrupt"
        model.mkdir()
        (model / "config.json").write_bytes((model_dir / "config.json").read_bytes())
        (model / "model.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes()[:5000])
    elif case == "resolution mismatch":
        model = tmp_path / "mismatch"
        save_model(model, SwapAutoencoder(preset("tiny", coverage="whole")))
        # The dir's recorded crop resolution (what swap crops at) disagrees with the network's.
        config = (model / "config.json").read_text().replace('"resolution": 64', '"resolution": 128', 1)
        (model / "config.json").write_text(config)
    elif case == "unreadable video":
        video = tmp_path / "broken.mp4"
        video.write_bytes(clip.read_bytes()[: 4000])
    else:
        blocker = tmp_path / "a_file"
        blocker.write_text("x")
        out = blocker / "out.mp4"
    result = runner.invoke(app, ["swap", str(video), "-m", str(model), "-o", str(out), *extra])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not list(tmp_path.glob(".out.mp4*"))


def test_cli_swaps_a_video(tmp_path: Path, clip: Path, model_dir: Path) -> None:
    out = tmp_path / "cli.mkv"
    result = runner.invoke(app, ["swap", str(clip), "-m", str(model_dir), "-o", str(out), "--end", "0.3",
                                 "--mask", "hull", "--blend", "feather", "--color", "none", "--codec", "h264"])
    assert result.exit_code == 0, result.output
    assert len(_timestamps(out)) == 9
    assert read_synthetic_tag(out) == "face swapped by swapface"


def test_spec_follows_model_config(model_dir: Path) -> None:
    from swapface.swap.pipeline import load_swap_model

    _, config, spec = load_swap_model(model_dir, "cpu")
    assert spec == AlignSpec(config.resolution, config.coverage) == AlignSpec(64, "whole")


def test_4k_image_keeps_resolution_and_every_pixel_away_from_the_face(tmp_path: Path, model_dir: Path) -> None:
    """A 3840x2160 frame: the face is swapped at full resolution, and PNG being lossless, every pixel
    away from the face is bit-identical to the input."""
    photo = next(open_media(STILLS / "df_damon_1.jpg")).image  # 600x800, face ~230 px
    photo = cv2.resize(photo, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_CUBIC)  # face ~570 px
    canvas = np.full((2160, 3840, 3), 90, np.uint8)
    canvas[100:100 + photo.shape[0], 1500:1500 + photo.shape[1]] = photo
    src, out = tmp_path / "uhd.png", tmp_path / "uhd_swapped.png"
    cv2.imwrite(str(src), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    stats = swap_media(src, model_dir, out, SwapOptions())
    assert stats.faces_swapped == 1
    result = next(open_media(out)).image
    assert result.shape == canvas.shape
    landmarks = _face_box(canvas)
    x0, y0 = landmarks.min(0) - (landmarks.max(0) - landmarks.min(0))
    x1, y1 = landmarks.max(0) + (landmarks.max(0) - landmarks.min(0))
    away = np.ones(canvas.shape[:2], bool)
    away[int(y0):int(y1), int(x0):int(x1)] = False
    assert np.array_equal(result[away], canvas[away])
    face = hull_mask(landmarks, canvas.shape[:2]) > 0.99
    assert np.abs(result[face].astype(int) - canvas[face]).mean() > 8


def test_memory_stays_bounded_whatever_the_length(tmp_path: Path, model_dir: Path) -> None:
    """Frames stream through bounded queues: once the queues are full (a few seconds in), swapping twice
    as many frames needs no more memory (numpy reports its buffers to tracemalloc, so decoded frames
    count). Measured here: about 54, 66, 65 and 69 frames' worth for 30, 90, 180 and 330 frames."""
    import tracemalloc

    peaks = []
    for seconds in (3.0, 6.0):
        tracemalloc.start()
        stats = swap_media(VIDEOS / "lp_d3.mp4", model_dir, tmp_path / "long.mp4", SwapOptions(end=seconds))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert stats.frames == round(30 * seconds)
    frame_bytes = 512 * 512 * 3
    assert peaks[1] < peaks[0] + 10 * frame_bytes, [p / frame_bytes for p in peaks]
    assert peaks[1] < 100 * frame_bytes  # 180 frames were written; far fewer are ever held


def test_temporal_smoothing_keeps_the_swapped_face_as_steady_as_the_source(tmp_path: Path, model_dir: Path) -> None:
    """Frame-to-frame change of the face, in crops aligned on the *source's* landmarks (so head motion
    cancels and only change added by the swap remains), relative to the source's own change: landmark
    jitter makes the unsmoothed swap flicker; the One-Euro filter brings it back near the source's.
    Measured here: about 1.6 without smoothing, 1.1 with the default."""
    from swapface.faces.align import crop_face

    clip = VIDEOS / "lp_d10.mp4"  # 2 s of a talking woman, not in the training facesets
    source = [f.image for f in open_media(clip) if f.index < 60]
    backend, spec = make_backend("dlib"), AlignSpec(128, "whole")
    landmarks = [backend.detect(image)[0].landmarks for image in source]

    def change(frames: list[np.ndarray]) -> float:
        total = 0.0
        for i in range(1, len(frames)):
            matrix = alignment_matrix(landmarks[i], spec)
            mask = hull_mask(transform_points(landmarks[i], matrix), (128, 128))
            before, now = (crop_face(f, matrix, 128).astype(np.float32) for f in (frames[i - 1], frames[i]))
            total += float((np.abs(now - before).mean(-1) * mask).sum() / mask.sum())
        return total

    ratio = {}
    for smooth in (0.0, 1.0):
        # (the watermark's own frame-to-frame pattern is not what this measures: tests/test_provenance.py)
        swap_media(clip, model_dir, tmp_path / "steady.mp4", SwapOptions(end=2.0, smooth=smooth, watermark=None))
        ratio[smooth] = change([f.image for f in open_media(tmp_path / "steady.mp4")]) / change(source)
    assert ratio[1.0] < 0.85 * ratio[0.0], ratio
    assert ratio[1.0] < 1.3, ratio


def test_cli_without_options_swaps_with_the_library_defaults(tmp_path: Path, clip: Path, monkeypatch) -> None:
    """A default changed in SwapOptions must reach users of the CLI too; only the device is the CLI's own."""
    seen: list[SwapOptions] = []

    def record(_input, _model, _output, options: SwapOptions, **_kwargs):
        seen.append(options)
        raise SwapfaceError("recorded")

    monkeypatch.setattr(swap_cli, "swap_media", record)
    result = CliRunner().invoke(app, ["swap", str(clip), "-m", str(tmp_path), "-o", str(tmp_path / "out.mp4")])
    assert result.exit_code == 1 and "recorded" in result.output
    assert seen == [replace(SwapOptions(), device="auto")]
