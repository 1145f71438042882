"""`swapface extract` on real clips and stills: coverage, alignment, identity filter, resume, bad input."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from typer.testing import CliRunner

from swapface.cli import extract as extract_cli
from swapface.cli.main import app
from swapface.errors import SwapfaceError
from swapface.faces import AlignSpec
from swapface.faces.align import eye_centres
from swapface.faceset import DB_NAME, Faceset
from swapface.faceset.extract import ExtractOptions, extract
from swapface.media import open_media, probe
from swapface.media.images import write_rgb

from .conftest import STILLS, VIDEOS
from .video_helpers import set_display_rotation, write_clip, write_damaged_jpeg

SWAPFACE = [sys.executable, "-m", "swapface.cli.main"]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*SWAPFACE, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def lp_d3_faceset(tmp_path_factory) -> Path:
    """Every frame of lp_d3.mp4 (354 frames, 512x512) at 256 px."""
    out = tmp_path_factory.mktemp("extract") / "lp_d3"
    extract([VIDEOS / "lp_d3.mp4"], out, ExtractOptions(spec=AlignSpec(256, "whole"), workers=2))
    return out


def test_faces_found_in_nearly_every_frame(lp_d3_faceset):
    frames = probe(VIDEOS / "lp_d3.mp4").frame_count
    with Faceset.open(lp_d3_faceset) as faceset:
        frames_with_face = {r.frame for r in faceset.records()}
    assert frames == 354
    assert len(frames_with_face) / frames >= 0.95


def test_aligned_eyes_land_on_template(lp_d3_faceset):
    with Faceset.open(lp_d3_faceset) as faceset:
        records = faceset.records()
        template_eyes = eye_centres(faceset.spec.template())
        errors = np.array([[np.linalg.norm(got - want) for got, want in
                            zip(eye_centres(r.crop_landmarks), template_eyes, strict=True)] for r in records])
        # The stored crop really is the source frame warped by the stored matrix.
        record = records[100]
        frame = next(f for f in open_media(VIDEOS / "lp_d3.mp4") if f.index == record.frame)
        from swapface.faces import crop_face

        recrop = crop_face(frame.image, record.matrix, faceset.spec.size)
        assert np.abs(recrop.astype(int) - faceset.load_image(record).astype(int)).mean() < 2.0
    assert np.median(errors) < 3.0, "eye centres of a 256 px crop should sit within a few px of the template"
    assert np.percentile(errors, 95) < 6.0


def test_metadata_is_complete(lp_d3_faceset):
    with Faceset.open(lp_d3_faceset) as faceset:
        record = faceset.records()[0]
        assert faceset.spec == AlignSpec(256, "whole")
    assert record.source == os.path.abspath(VIDEOS / "lp_d3.mp4")
    assert record.landmarks.shape == (68, 2) and record.crop_landmarks.shape == (68, 2)
    assert record.matrix.shape == (2, 3) and record.embedding.shape == (128,)
    assert record.bbox.shape == (4,) and record.sharpness > 0 and record.score > 0
    assert (record.frame_width, record.frame_height) == (512, 512)
    assert abs(record.time - record.frame / 30) < 1e-3


def test_deleting_a_png_removes_the_face(tmp_path, lp_d3_faceset):
    copy = tmp_path / "copy"
    shutil.copytree(lp_d3_faceset, copy)
    with Faceset.open(copy) as faceset:
        before = faceset.records()
        faceset.path_of(before[5]).unlink()
        after = faceset.records()
    assert len(after) == len(before) - 1
    assert before[5].filename not in {r.filename for r in after}


def test_identity_filter_keeps_only_the_reference_person(tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for person in ("jolie", "aniston", "damon", "johansson"):
        for i in (2, 3):
            shutil.copy(STILLS / f"df_{person}_{i}.jpg", mixed)
    result = run_cli("extract", mixed, "-o", tmp_path / "jolie", "--reference", STILLS / "df_jolie_1.jpg",
                     "--size", 128)
    assert result.returncode == 0, result.stderr
    assert "other person" in result.stderr
    with Faceset.open(tmp_path / "jolie") as faceset:
        kept = sorted(Path(r.source).name for r in faceset.records())
    assert kept == ["df_jolie_2.jpg", "df_jolie_3.jpg"]


def test_rotated_phone_video_is_turned_upright(tmp_path):
    """A clip stored sideways with a display matrix (as phones write it) is read upright."""
    frames = [np.ascontiguousarray(np.rot90(f.image)) for f in open_media(VIDEOS / "lp_d3.mp4")
              if f.index < 6]
    clip = write_clip(tmp_path / "sideways.mp4", frames)
    set_display_rotation(clip, 90)
    info = probe(clip)
    assert (info.width, info.height, info.rotation) == (512, 512, 90)
    upright = next(iter(open_media(clip))).image
    original = next(iter(open_media(VIDEOS / "lp_d3.mp4"))).image
    assert np.abs(upright.astype(int) - original.astype(int)).mean() < 6
    stats = extract([clip], tmp_path / "fs", ExtractOptions(spec=AlignSpec(64, "whole"), workers=1))
    assert stats.faces_kept == 6


def test_vertical_video_keeps_its_geometry():
    info = probe(VIDEOS / "lp_d13.mp4")
    frame = next(iter(open_media(VIDEOS / "lp_d13.mp4")))
    assert (info.width, info.height) == (720, 1280)
    assert frame.image.shape == (1280, 720, 3)


def test_dedupe_drops_repeated_frames(tmp_path):
    still = next(iter(open_media(VIDEOS / "lp_d3.mp4"))).image
    clip = write_clip(tmp_path / "frozen.mp4", [still] * 8)
    options = ExtractOptions(spec=AlignSpec(128, "whole"), dedupe=True, workers=1)
    stats = extract([clip], tmp_path / "fs", options)
    assert stats.faces_kept == 1 and stats.rejected["duplicate"] == 7


def _snapshot(faceset_dir: Path) -> dict[str, tuple]:
    with Faceset.open(faceset_dir) as faceset:
        return {r.filename: (r.frame, r.landmarks.round(3).tobytes(), faceset.path_of(r).read_bytes())
                for r in faceset.records()}


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    args = ["extract", VIDEOS / "lp_d9.mp4", "--size", 96, "--max-frames", 120, "--dedupe", "--workers", 2]
    reference = run_cli(*args, "-o", tmp_path / "whole")
    assert reference.returncode == 0, reference.stderr

    target = tmp_path / "killed"
    process = subprocess.Popen([*SWAPFACE, *map(str, args), "-o", str(target)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and process.poll() is None:
        if (target / DB_NAME).exists():
            try:
                with sqlite3.connect(target / DB_NAME) as db:
                    row = db.execute("SELECT next_frame FROM progress").fetchone()
                done = row[0] if row else 0
            except sqlite3.OperationalError:
                done = 0
        if done >= 10:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert 10 <= done < 120, "the run must be killed part-way"

    partial = _snapshot(target)  # the interrupted faceset is valid and readable
    assert 0 < len(partial) < len(_snapshot(tmp_path / "whole"))
    resumed = run_cli(*args, "-o", target)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stderr
    assert _snapshot(target) == _snapshot(tmp_path / "whole")


def test_rerun_of_a_finished_extraction_adds_nothing(tmp_path):
    options = ExtractOptions(spec=AlignSpec(64, "whole"), max_frames=5, workers=1)
    extract([VIDEOS / "lp_d5.mp4"], tmp_path / "fs", options)
    first = _snapshot(tmp_path / "fs")
    again = extract([VIDEOS / "lp_d5.mp4"], tmp_path / "fs", options)
    assert again.faces_kept == 0 and _snapshot(tmp_path / "fs") == first


def test_the_same_clip_through_a_link_resumes_and_adds_nothing(tmp_path):
    """Sources are keyed by their real path; a faceset keyed by a link's path (as before) keeps its key."""
    options = ExtractOptions(spec=AlignSpec(64, "whole"), max_frames=5, workers=1)
    link = tmp_path / "footage" / "clip.mp4"
    link.parent.mkdir()
    link.symlink_to(VIDEOS / "lp_d5.mp4")
    extract([VIDEOS / "lp_d5.mp4"], tmp_path / "fs", options)
    first = _snapshot(tmp_path / "fs")
    again = extract([link], tmp_path / "fs", options)
    assert again.faces_kept == 0 and _snapshot(tmp_path / "fs") == first
    # a faceset made through the link when keys were unresolved paths
    extract([link], tmp_path / "old", options)
    with sqlite3.connect(tmp_path / "old" / "faceset.sqlite") as db:
        for table in ("progress", "faces"):
            db.execute(f"UPDATE {table} SET source = ?", (str(link),))
    old = _snapshot(tmp_path / "old")
    assert extract([link], tmp_path / "old", options).faces_kept == 0 and _snapshot(tmp_path / "old") == old


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    garbage = write_damaged_jpeg(tmp_path / "broken.jpg", STILLS / "df_jolie_2.jpg", cut=True)
    faceless = tmp_path / "coffee.png"
    write_rgb(faceless, skimage.data.coffee())
    frames = [f.image for f in open_media(VIDEOS / "lp_d5.mp4") if f.index < 40]
    truncated = write_clip(tmp_path / "truncated.mp4", frames, faststart=True)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    return {
        "missing": (tmp_path / "nope.mp4", "no such file"),
        "not a video": (text, "not a readable video"),
        "truncated": (truncated, "truncated"),
        "unreadable image": (garbage, "not a readable image"),
        "no faces": (faceless, "no faces found"),
    }


@pytest.mark.parametrize("case", ["missing", "not a video", "truncated", "unreadable image", "no faces"])
def test_bad_input_gives_one_line_error_and_no_output(tmp_path, case):
    path, message = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    result = run_cli("extract", path, "-o", out)
    assert_one_line_error(result, str(path), message)
    assert not out.exists()


def test_same_file_name_in_two_folders_gives_two_faces(tmp_path):
    for folder, still in (("one", "df_jolie_2.jpg"), ("two", "df_jolie_3.jpg")):
        (tmp_path / folder).mkdir()
        shutil.copy(STILLS / still, tmp_path / folder / "portrait.jpg")
    stats = extract([tmp_path / "one", tmp_path / "two"], tmp_path / "fs",
                    ExtractOptions(spec=AlignSpec(64, "whole"), workers=1))
    with Faceset.open(tmp_path / "fs") as faceset:
        names = [r.filename for r in faceset.records()]
    assert stats.faces_kept == 2 and len(set(names)) == 2
    assert all(name.startswith("portrait") for name in names)


def test_cli_without_options_extracts_with_the_library_defaults(tmp_path, monkeypatch) -> None:
    """A default changed in ExtractOptions must reach users of the CLI too; only --workers is the CLI's own."""
    seen: list[ExtractOptions] = []

    def record(_inputs, _output, options: ExtractOptions, **_kwargs):
        seen.append(options)
        raise SwapfaceError("recorded")

    monkeypatch.setattr(extract_cli, "extract", record)
    result = CliRunner().invoke(app, ["extract", str(VIDEOS / "lp_d3.mp4"), "-o", str(tmp_path / "faces")])
    assert result.exit_code == 1 and "recorded" in result.output
    assert seen == [ExtractOptions(workers=os.cpu_count() or 1)]
