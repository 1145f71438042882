"""`swapface eval` end to end on real clips: a perfect "swap" scores perfectly, a swap to the right person
scores closer to them, jitter raises the flicker ratio, a pasted patch raises the seam score, the HTML
report renders offline, and bad inputs give one-line errors."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from swapface.errors import InputError
from swapface.eval.evaluate import EvalOptions, evaluate, lockstep
from swapface.eval.heldout import held_out_faces, held_out_scores, score_direction
from swapface.eval.metrics import sharpness_ratio
from swapface.eval.report import write_report
from swapface.faces import AlignSpec, make_backend
from swapface.faces.masks import face_outline, hull_mask
from swapface.faceset.extract import ExtractOptions, extract
from swapface.media import open_media
from swapface.media.images import read_rgb, write_rgb
from swapface.model import PRESETS, SwapAutoencoder
from swapface.modeldir import save_model

from .conftest import STILLS, VIDEOS

CLIP = VIDEOS / "lp_d18.mp4"  # a young man: the same person as stills/lp_d19.jpg
SAME_PERSON = STILLS / "lp_d19.jpg"
OTHER_PERSON = STILLS / "df_dicaprio_1.jpg"
FRAMES = 30
SHORT = EvalOptions(max_frames=FRAMES)


def write_video(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    """Lossless H.264 (4:4:4, qp 0): the copy differs from the source only where the test changed it."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"qp": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    return [frame.image for frame in itertools.islice(open_media(CLIP), FRAMES)]


@pytest.fixture(scope="module")
def face_box(clip_frames) -> tuple[int, int, int, int]:
    """Square around the face hull (forehead included) in the first frame: x0, y0, side, side."""
    face = max(make_backend("dlib").detect(clip_frames[0]), key=lambda f: f.size)
    outline = face_outline(face.landmarks)
    (x0, y0), (x1, y1) = outline.min(0), outline.max(0)
    side = int(max(x1 - x0, y1 - y0))
    return int((x0 + x1 - side) / 2), int((y0 + y1 - side) / 2), side, side


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("eval_videos")


@pytest.fixture(scope="module")
def self_eval():
    """The clip evaluated against itself, with its own person as target and someone else as original."""
    return evaluate(CLIP, CLIP, SAME_PERSON, OTHER_PERSON, SHORT)


@pytest.fixture(scope="module")
def control_eval(videos, clip_frames):
    """A lossless re-encoding of the clip: the baseline that jitter and patches are compared with."""
    return evaluate(CLIP, write_video(videos / "control.mp4", clip_frames), SAME_PERSON, OTHER_PERSON, SHORT)


@pytest.fixture(scope="module")
def patch_eval(videos, clip_frames, face_box):
    """A crude swap: a recoloured square pasted over the face with hard edges."""
    x, y, w, h = face_box
    pasted = []
    for image in clip_frames:
        image = image.copy()
        image[y:y + h, x:x + w] = np.clip(image[y:y + h, x:x + w].astype(np.int16) + (30, 10, -20), 0, 255)
        pasted.append(image)
    return evaluate(CLIP, write_video(videos / "patch.mp4", pasted), SAME_PERSON, OTHER_PERSON, SHORT)


def test_video_against_itself_scores_perfectly(self_eval):
    result = self_eval
    assert len(result.frames) == FRAMES and result.frames_with_face == FRAMES
    assert result.flicker_ratio == pytest.approx(1.0, abs=1e-9)
    assert result.summaries["change_source"].mean > 0.3  # the clip does move: the ratio is not 0/0
    for key in ("nme", "yaw_diff", "pitch_diff", "roll_diff", "flicker_excess", "seam_colour", "seam_gradient",
                "seam_brows", "seam_sides", "seam_jaw", "skin_brightness", "skin_colour"):
        assert result.summaries[key].worst5 == 0.0, key
    assert result.sharpness == pytest.approx(1.0) and result.summaries["sharpness"].worst5 == pytest.approx(1.0)
    assert result.expression.dynamic_nme == 0.0 and result.expression.frames == FRAMES
    assert result.expression.correlation["mouth_open"] == pytest.approx(1.0)


def test_same_person_as_target_scores_closer_to_target(self_eval):
    assert self_eval.closer_to_target >= 0.9
    assert self_eval.summaries["d_target"].mean < 0.6 < self_eval.summaries["d_original"].mean


def test_dicaprio_clip_is_closer_to_dicaprio_photos(tmp_path):
    target = tmp_path / "dicaprio"
    target.mkdir()
    for name in ("df_dicaprio_1.jpg", "df_dicaprio_2.jpg"):
        shutil.copy(STILLS / name, target / name)
    clip = VIDEOS / "fom_10.mp4"
    result = evaluate(clip, clip, target, SAME_PERSON, EvalOptions(max_frames=20))
    assert result.frames_with_face >= 18
    assert result.closer_to_target >= 0.9


def test_other_person_as_target_is_not_closer():
    # No --original: the original identity is the source frames' own faces.
    result = evaluate(CLIP, CLIP, OTHER_PERSON, None, EvalOptions(max_frames=20))
    assert result.original is None
    assert result.closer_to_target <= 0.1
    assert result.summaries["d_target"].median > 0.6 > result.summaries["d_original"].median


def test_numbers_do_not_depend_on_the_number_of_workers():
    options = EvalOptions(max_frames=12)
    alone = evaluate(CLIP, CLIP, OTHER_PERSON, None, options)
    pooled = evaluate(CLIP, CLIP, OTHER_PERSON, None, dataclasses.replace(options, workers=2))
    np.testing.assert_equal([dataclasses.asdict(f) for f in pooled.frames],
                            [dataclasses.asdict(f) for f in alone.frames])
    assert pooled.closer_to_target == alone.closer_to_target


def test_original_identity_from_source_faces_that_sampling_skipped(tmp_path, clip_frames):
    # Faces only on frames 1 and 2: the every-5th-frame sample of source faces finds none.
    frames = tmp_path / "frames"
    frames.mkdir()
    write_rgb(frames / "0.png", np.ascontiguousarray(np.flipud(clip_frames[0][:160])))  # backdrop, no face
    write_rgb(frames / "1.png", clip_frames[1])
    write_rgb(frames / "2.png", clip_frames[2])
    result = evaluate(frames, frames, OTHER_PERSON)
    assert [f.face for f in result.frames] == [False, True, True]
    assert all(f.d_original < 0.3 for f in result.frames[1:])  # the same faces as the source's
    assert result.closer_to_target == 0.0


def test_jittered_face_raises_flicker_ratio(videos, clip_frames, face_box, control_eval):
    x, y, w, h = face_box
    region = np.zeros(clip_frames[0].shape[:2], np.float32)
    region[y - h // 4:y + h + h // 4, x - w // 4:x + w + w // 4] = 1
    region = cv2.GaussianBlur(region, (0, 0), 8)[..., None]
    rng = np.random.default_rng(0)
    jittered = []
    for image in clip_frames:
        dx, dy = rng.uniform(-1.5, 1.5, 2)
        moved = cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), image.shape[1::-1],
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        jittered.append((moved * region + image * (1 - region)).round().astype(np.uint8))
    result = evaluate(CLIP, write_video(videos / "jitter.mp4", jittered), SAME_PERSON, OTHER_PERSON, SHORT)
    assert control_eval.flicker_ratio == pytest.approx(1.0, abs=0.1)
    assert result.flicker_ratio > 1.4 and result.flicker_ratio > control_eval.flicker_ratio + 0.4
    assert result.summaries["flicker_excess"].mean > 3 * abs(control_eval.summaries["flicker_excess"].mean)
    assert any(s.reason == "most added flicker" for s in result.strips)


def test_recoloured_patch_shows_in_skin_light(patch_eval, control_eval):
    # The patch adds (30, 10, -20) to RGB over the face: warmer and brighter skin in every region.
    assert patch_eval.summaries["skin_colour"].mean > 8 > 2 > control_eval.summaries["skin_colour"].mean
    assert set(patch_eval.light_regions) == {"forehead", "cheek_left", "cheek_right", "chin"}


def test_pasted_square_raises_seam_score(patch_eval, control_eval):
    control, patch = control_eval.summaries, patch_eval.summaries
    assert control["seam_colour"].mean < 1.0
    assert patch["seam_colour"].mean > 3.0 and patch["seam_colour"].mean > 5 * control["seam_colour"].mean
    assert patch["seam_gradient"].mean > 3 * control["seam_gradient"].mean
    # The patch leaves the face's shape alone: NME stays small and the identity stays the same.
    assert patch["nme"].mean < 0.03
    assert patch_eval.closer_to_target >= 0.9


def test_json_report_holds_every_frame(tmp_path, patch_eval):
    json_path, html_path = write_report(tmp_path / "out", patch_eval, None)
    data = json.loads(json_path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    video = data["video"]
    assert len(video["per_frame"]) == FRAMES and video["frames"]["with_face"] == FRAMES
    assert video["per_frame"][0]["change_source"] is None  # no previous frame: null, not NaN
    assert video["summary"]["seam_colour"]["mean"] == pytest.approx(patch_eval.summaries["seam_colour"].mean)
    assert data["held_out"] is None
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_html_report_renders_offline_in_chromium(tmp_path, patch_eval):
    chromium = shutil.which("chromium")
    assert chromium, "headless Chromium is needed to check the report: apt-get install -y chromium"
    _, html_path = write_report(tmp_path / "out", patch_eval, None)
    text = html_path.read_text()
    assert not re.search(r"https?://", text), "the report must not reference network assets"
    assert "<script" not in text and "<link" not in text and "@import" not in text
    sources = re.findall(r'src="([^"]*)"', text)
    assert len(sources) >= 5 + 4 * len(patch_eval.strips)  # plots + four thumbnails per strip
    assert all(s.startswith("data:image/png;base64,") for s in sources)

    shot = tmp_path / "shot.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=1200,2000", html_path.resolve().as_uri()],
                   check=True, timeout=120, capture_output=True)
    image = read_rgb(shot)
    assert image.shape == (2000, 1200, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 500, "screenshot looks blank"
    # Plot lines in matplotlib's first two colours (C0 blue, C1 orange) are on screen.
    for colour in ((31, 119, 180), (255, 127, 14)):
        assert (np.abs(image.astype(int) - colour).max(-1) < 30).sum() > 1000, colour


def test_streams_of_different_length_are_an_error(videos, clip_frames):
    shorter = write_video(videos / "shorter.mp4", clip_frames[:FRAMES - 5])
    with pytest.raises(InputError, match=rf"shorter.mp4: has {FRAMES - 5} frames but the source"):
        evaluate(CLIP, shorter, SAME_PERSON, None, SHORT)
    # Streams without a known length are caught while reading.
    source, swapped = videos / "folder_a", videos / "folder_b"
    for folder, count in ((source, 3), (swapped, 2)):
        folder.mkdir()
        for index in range(count):
            write_rgb(folder / f"{index:03d}.png", clip_frames[index])
    with pytest.raises(InputError, match="folder_b: ends after 2 frames"):
        list(lockstep(source, swapped, None))


def test_frames_of_different_size_are_an_error(videos, clip_frames):
    smaller = write_video(videos / "smaller.mp4", [cv2.resize(f, (240, 240)) for f in clip_frames[:FRAMES]])
    with pytest.raises(InputError, match="smaller.mp4: is 240x240 but the source is 480x480"):
        evaluate(CLIP, smaller, SAME_PERSON, None, SHORT)


def test_no_face_anywhere_is_an_error(tmp_path, clip_frames):
    backdrop = tmp_path / "backdrop.png"
    write_rgb(backdrop, np.ascontiguousarray(clip_frames[0][:120, :120]))
    with pytest.raises(InputError, match="backdrop.png: no face found"):
        evaluate(backdrop, backdrop, SAME_PERSON, None)


def _cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "swapface.cli.main", "eval", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_cli_writes_json_and_html(tmp_path):
    out = tmp_path / "report"
    run = _cli("--source", CLIP, "--swapped", CLIP, "--target", SAME_PERSON, "--original", OTHER_PERSON,
               "--max-frames", 6, "-o", out)
    assert run.returncode == 0, run.stderr
    data = json.loads((out / "eval.json").read_text())
    assert len(data["video"]["per_frame"]) == 6 and data["video"]["identity"]["closer_to_target"] == 1.0
    assert (out / "report.html").stat().st_size > 10_000
    assert "closer to target" in run.stderr


@pytest.mark.parametrize("problem", ["missing", "not a video", "options", "output is a file"])
def test_cli_bad_input_is_one_line(tmp_path, problem):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 100)
    args = {
        "missing": ("--source", tmp_path / "nothing.mp4", "--swapped", CLIP, "--target", SAME_PERSON),
        "not a video": ("--source", CLIP, "--swapped", broken, "--target", SAME_PERSON),
        "options": ("--source", CLIP, "--target", SAME_PERSON),
        "output is a file": ("--source", CLIP, "--swapped", CLIP, "--target", SAME_PERSON),
    }[problem]
    out = tmp_path / "out"
    if problem == "output is a file":
        (tmp_path / "taken").write_text("not a folder")
        out = tmp_path / "taken" / "out"
    run = _cli(*args, "-o", out)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), run.stderr
    assert "Traceback" not in run.stderr
    expected = {"missing": "nothing.mp4: no such file", "not a video": "broken.mp4: not a readable video",
                "options": "--swapped", "output is a file": "taken: is a file, not a folder"}[problem]
    assert expected in lines[0]
    assert not (tmp_path / "out").exists()


# -- a model on held-out faces -----------------------------------------------------------------------

def _small_faceset(root: Path, clip: Path, frames: int) -> Path:
    out = root / clip.stem
    extract([clip], out, ExtractOptions(spec=AlignSpec(64, "whole"), every=3, max_frames=frames, workers=1))
    return out


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> Path:
    """16 faces of lp_d18 at 64 px, whole-face crops: what the tiny preset trains on."""
    return _small_faceset(tmp_path_factory.mktemp("held_out"), CLIP, 48)


@pytest.fixture(scope="module")
def held_out_other(tmp_path_factory) -> Path:
    """8 faces of another person (fom_10.mp4, DiCaprio)."""
    return _small_faceset(tmp_path_factory.mktemp("held_out"), VIDEOS / "fom_10.mp4", 24)


def _tiny_model_dir(path: Path, faces: np.ndarray | None, steps: int = 100, coverage: str = "whole") -> Path:
    """A very small model (84 k parameters, so it fits in seconds on a busy CPU) whose decoder "a" is
    fitted to `faces`; decoder "b" stays untrained."""
    torch.manual_seed(0)
    model = SwapAutoencoder(PRESETS["tiny"].replace(base_width=8, max_width=16, latent_channels=8, coverage=coverage))
    if faces is not None:
        x = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(steps):
            rgb, _ = model.decode(model.encode(x)[0], "a")
            loss = (rgb - x).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    save_model(path, model.eval())
    return path


@pytest.fixture(scope="module")
def fitted_model(tmp_path_factory, held_out) -> Path:
    faces = held_out_faces(held_out, "a", 64, "whole", 64)
    assert faces.crops.shape[1:] == (64, 64, 3) and len(faces.crops) >= 12
    assert faces.crop_landmarks.shape == (len(faces.crops), 68, 2)
    # 300 steps: at 100 the output is a face by PSNR (25 dB) but not yet one dlib finds landmarks on (NME 0.28,
    # the untrained model's 0.27); at 300 it is (NME 0.05)
    return _tiny_model_dir(tmp_path_factory.mktemp("models") / "fitted", faces.crops, steps=300)


def test_reconstruction_tells_a_fitted_decoder_from_an_untrained_one(tmp_path, held_out, fitted_model):
    untrained = _tiny_model_dir(tmp_path / "untrained", None)
    (fitted_a,) = held_out_scores(fitted_model, {"a": held_out}, max_faces=12)
    (untrained_a,) = held_out_scores(untrained, {"a": held_out}, max_faces=12)
    assert fitted_a.name == "a->a" and fitted_a.is_reconstruction and len(fitted_a.psnr) == 12
    assert fitted_a.pooled_psnr > untrained_a.pooled_psnr + 3
    assert np.mean(fitted_a.ssim) > np.mean(untrained_a.ssim) + 0.1
    assert np.mean(fitted_a.nme) < np.mean(untrained_a.nme)  # a face-shaped output keeps the landmarks
    assert math.isnan(fitted_a.closer_to_target)  # one identity: nothing to be closer to
    assert fitted_a.examples[0][0].shape == fitted_a.examples[0][1].shape == (64, 64, 3)


class _PerfectAutoencoder:
    """Stands in for a model that redraws every face exactly, whichever decoder is asked."""

    def swap(self, x, to):
        return x, x[:, :1]


def test_held_out_scores_of_a_perfect_autoencoder(held_out, held_out_other):
    backend = make_backend("dlib")
    faces = {k: held_out_faces(p, k, 64, "whole", 8) for k, p in (("a", held_out), ("b", held_out_other))}
    references = {k: f.mean_embedding for k, f in faces.items()}
    model = _PerfectAutoencoder()
    reconstruction = score_direction(model, faces["a"], "a", references, backend)
    assert reconstruction.pooled_psnr == 100.0 and min(reconstruction.ssim) == pytest.approx(1.0)
    assert max(reconstruction.nme) == 0.0
    assert reconstruction.closer_to_target == 1.0  # the output shows A, the person it should show
    assert reconstruction.expression.dynamic_nme == 0.0 and reconstruction.sharpness == pytest.approx(1.0)
    assert reconstruction.expression.correlation["mouth_open"] == pytest.approx(1.0)
    assert all(abs(step) < 1e-9 for values in reconstruction.light.values() for pair in values for step in pair)
    # A "swap" to B that still shows A: identity says so, while expression is kept perfectly.
    assert math.isnan(score_direction(model, faces["a"], "b", references, backend).sharpness)  # no B faces given
    swap = score_direction(model, faces["a"], "b", references, backend, real_faces=faces["b"])
    assert swap.closer_to_target == 0.0 and not swap.psnr
    assert swap.sharpness == pytest.approx(sharpness_ratio(  # A's faces against B's: same-size crops, other footage
        list(faces["a"].crops), [hull_mask(p, (64, 64)) for p in faces["a"].crop_landmarks],
        list(faces["b"].crops), [hull_mask(p, (64, 64)) for p in faces["b"].crop_landmarks]))
    assert np.mean(swap.d_target) > 0.6 > np.mean(swap.d_original)


def test_held_out_faces_must_match_the_model_crops(tmp_path, held_out):
    model_dir = _tiny_model_dir(tmp_path / "tight", None, coverage="tight")
    with pytest.raises(InputError, match="'whole' coverage but the model was trained on 'tight'"):
        held_out_scores(model_dir, {"a": held_out})


def test_cli_scores_a_model_on_held_out_faces(tmp_path, held_out, held_out_other, fitted_model):
    out = tmp_path / "report"
    run = _cli("--model", fitted_model, "--held-out-a", held_out, "--held-out-b", held_out_other,
               "--max-faces", 4, "-o", out)
    assert run.returncode == 0, run.stderr
    data = json.loads((out / "eval.json").read_text())
    assert data["video"] is None
    directions = {d["direction"]: d for d in data["held_out"]}
    assert sorted(directions) == ["a->a", "a->b", "b->a", "b->b"]
    assert directions["a->a"]["kind"] == "reconstruction" and directions["a->b"]["kind"] == "swap"
    assert directions["a->a"]["faces"] == 4 and len(directions["a->a"]["per_face"]["ssim"]) == 4
    assert directions["a->b"]["per_face"]["psnr"] == []
    headline = directions["a->b"]["headline"]  # the numbers training logs, by the same scorer
    assert {"dyn_nme", "mouth_corr", "eye_corr", "blink", "sharpness", "light_brightness"} <= set(headline)
    assert directions["a->b"]["expression"]["frames"] == 4
    assert "Model on held-out faces" in (out / "report.html").read_text()
    run = _cli("--model", tmp_path / "no_model", "--held-out-a", held_out, "-o", out)
    assert run.returncode == 1 and run.stderr.strip().count("\n") == 0
    assert "no_model: model directory not found" in run.stderr
