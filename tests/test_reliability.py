"""A hostile user's mistakes, one test each: no lost data, no tracebacks, no litter (issue 9).

Commands run as real subprocesses, as a user would run them, on real faces from ../shared/data and the
bundled demo model. Where a case needs a normal user's permissions, the test drops root's
permission-override capabilities for the command it starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from swapface.atomic import atomic_path, remove_stale_temporaries
from swapface.demo import bundled_model
from swapface.errors import InputError
from swapface.faces import AlignSpec
from swapface.faceset import DB_NAME, Faceset
from swapface.faceset.extract import ExtractOptions, extract
from swapface.media import open_media
from swapface.modeldir import load_model
from swapface.outputs import check_outputs
from swapface.train.checkpoint import CHECKPOINT_FILE

from .conftest import STILLS, VIDEOS
from .video_helpers import write_clip

SWAPFACE = [sys.executable, "-m", "swapface.cli.main"]
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, PR_CAPBSET_DROP = 1, 2, 24


def run(*args: object, timeout: float = 300, plain_user: bool = False, file_limit: int | None = None,
        **kwargs) -> subprocess.CompletedProcess:
    """Run `swapface ARGS`; `plain_user` without root's permission overrides, `file_limit` with files
    capped at that many bytes (writes past it fail as on a full disk)."""

    def limit() -> None:
        if plain_user:
            libc = ctypes.CDLL(None, use_errno=True)
            for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):  # a no-op (harmless) when not root
                libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        if file_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG instead of dying
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run([*SWAPFACE, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit, **kwargs)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode not in (0, None), result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".part" in p.name)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def clip(work: Path) -> Path:
    """12 frames of a real talking face (lp_d7.mp4, 480x480)."""
    frames = [f.image for f in open_media(VIDEOS / "lp_d7.mp4") if f.index < 12]
    return write_clip(work / "clip.mp4", frames)


@pytest.fixture(scope="module")
def faceless_clip(work: Path) -> Path:
    """8 frames of real footage with no face in them (a corner of the crowd clip's background)."""
    frames = [f.image[:240, :320].copy() for f in open_media(VIDEOS / "facenet_crowd.mp4") if f.index < 8]
    return write_clip(work / "no_face.mp4", frames)


def tiny_faceset(folder: Path, *stills: str) -> Path:
    extract([STILLS / name for name in stills], folder, ExtractOptions(spec=AlignSpec(64, "whole")))
    return folder


@pytest.fixture(scope="module")
def facesets(work: Path) -> tuple[Path, Path]:
    """Two facesets of 2 and 1 faces (the smallest a user can give)."""
    return (tiny_faceset(work / "fa", "df_jolie_1.jpg", "df_jolie_2.jpg"),
            tiny_faceset(work / "fb", "df_damon_1.jpg"))


# -- data loss --------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["same path", "dot-dot", "symlink", "hard link"])
def test_swap_output_that_is_the_input_is_refused(tmp_path, clip, how):
    source = tmp_path / "in.mp4"
    shutil.copy(clip, source)
    before = digest(source)
    output = {"same path": source, "dot-dot": tmp_path / "x" / ".." / "in.mp4"}.get(how, tmp_path / "out.mp4")
    (tmp_path / "x").mkdir()
    if how == "symlink":
        output.symlink_to(source)
    elif how == "hard link":
        os.link(source, output)
    result = run("swap", source, "-m", bundled_model(), "-o", output)
    assert_one_line_error(result, "is the input")
    assert digest(source) == before


def test_png_output_that_is_the_input_is_refused(tmp_path):
    image = tmp_path / "face.png"
    shutil.copy(STILLS / "skimage_astronaut.png", image)
    before = digest(image)
    (tmp_path / "x").mkdir()
    result = run("swap", image, "-m", bundled_model(), "-o", tmp_path / "x" / ".." / "face.png")
    assert_one_line_error(result, "is the input")
    assert digest(image) == before


def test_patches_into_a_non_empty_folder_fail_before_any_work(tmp_path, clip):
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "keep.txt").write_text("artist's file")
    result = run("swap", clip, "-m", bundled_model(), "-o", tmp_path / "out.mp4", "--patches", patches)
    assert_one_line_error(result, "patches", "not empty")
    assert not (tmp_path / "out.mp4").exists()
    assert [p.name for p in patches.iterdir()] == ["keep.txt"]
    assert leftovers(tmp_path) == []


def test_extracting_a_faceset_into_itself_is_refused(tmp_path, facesets):
    faceset = tmp_path / "fa"
    shutil.copytree(facesets[0], faceset)
    files = sorted(p.name for p in faceset.iterdir())
    result = run("extract", faceset, "-o", faceset, "--size", "64")
    assert_one_line_error(result, "is the input")
    assert sorted(p.name for p in faceset.iterdir()) == files


def test_training_into_a_faceset_folder_is_refused(facesets):
    before = sorted(p.name for p in facesets[0].iterdir())
    result = run("train", *facesets, "-m", facesets[0], "--preset", "tiny", "--steps", "2")
    assert_one_line_error(result, "is the input")
    assert sorted(p.name for p in facesets[0].iterdir()) == before


def test_check_outputs_sees_through_links(tmp_path):
    source = tmp_path / "a.mp4"
    source.write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    os.link(source, tmp_path / "hard.mp4")
    (tmp_path / "soft.mp4").symlink_to(source)
    for output in (tmp_path / "hard.mp4", tmp_path / "soft.mp4", tmp_path / "sub" / ".." / "a.mp4"):
        with pytest.raises(InputError, match="is the input"):
            check_outputs([source], files=[output])
    with pytest.raises(InputError, match="holds the input"):
        check_outputs([source], folders=[tmp_path])
    check_outputs([source], files=[tmp_path / "b.mp4"], folders=[tmp_path / "sub"])


# -- security ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../secret.png", "ABSOLUTE", "link.png"])
def test_faceset_rows_cannot_reach_files_outside_it(tmp_path, facesets, name):
    faceset = tmp_path / "fs"
    shutil.copytree(facesets[0], faceset)
    secret = tmp_path / "secret.png"
    shutil.copy(next(faceset.glob("*.png")), secret)
    if name == "ABSOLUTE":
        name = str(secret)
    elif name == "link.png":
        (faceset / name).symlink_to(secret)
    with sqlite3.connect(faceset / DB_NAME) as db:
        db.execute("UPDATE faces SET filename = ? WHERE rowid = (SELECT MIN(rowid) FROM faces)", (name,))
    with Faceset.open(faceset) as opened, pytest.raises(InputError, match="not a file inside the faceset"):
        opened.records()
    result = run("train", faceset, facesets[1], "-m", tmp_path / "model", "--preset", "tiny", "--steps", "2")
    assert_one_line_error(result, DB_NAME, "not a file inside the faceset")
    assert not (tmp_path / "model").exists()


# -- wrong results accepted silently ----------------------------------------------------------------

def test_config_that_does_not_match_the_weights_is_refused(tmp_path, clip):
    model = tmp_path / "model"
    shutil.copytree(bundled_model(), model)
    config = json.loads((model / "config.json").read_text())
    real = config["model"]["resolution"]
    config["resolution"] = config["model"]["resolution"] = 64 if real != 64 else 128  # a claim the weights deny
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match=f"resolution {real}"):
        load_model(model)
    result = run("swap", clip, "-m", model, "-o", tmp_path / "out.mp4")
    assert_one_line_error(result, "model.safetensors", f"resolution {real}")
    assert not (tmp_path / "out.mp4").exists()


def test_footage_without_a_face_is_an_error_unless_allowed(tmp_path, faceless_clip):
    output = tmp_path / "out.mp4"
    result = run("swap", faceless_clip, "-m", bundled_model(), "-o", output)
    assert_one_line_error(result, "no face", str(faceless_clip))
    assert not output.exists() and leftovers(tmp_path) == []
    allowed = run("swap", faceless_clip, "-m", bundled_model(), "-o", output, "--allow-no-faces")
    assert allowed.returncode == 0, allowed.stderr
    with av.open(str(output)) as container:
        assert container.metadata.get("synthetic")
        assert container.streams.video[0].frames == 8


# -- one line instead of a traceback ----------------------------------------------------------------

def test_full_disk_during_swap_is_one_line_and_leaves_nothing(tmp_path, clip):
    output = tmp_path / "out.mov"
    result = run("swap", clip, "-m", bundled_model(), "-o", output, "--crf", "0", file_limit=20_000)
    assert_one_line_error(result, "File too large")
    assert not output.exists() and leftovers(tmp_path) == []


def test_full_disk_in_a_new_training_run_leaves_no_model_dir(tmp_path, facesets):
    model = tmp_path / "model"
    result = run("train", *facesets, "-m", model, "--preset", "tiny", "--steps", "2", file_limit=500_000)
    assert_one_line_error(result, "File too large")
    assert not model.exists() and leftovers(tmp_path) == []


@pytest.fixture
def read_only(tmp_path) -> Path:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


def test_unwritable_output_folders_are_one_line(read_only, tmp_path, facesets, clip):
    for args, fragment in [
        (("extract", STILLS / "df_jolie_1.jpg", "-o", read_only / "faces", "--size", "64"), "read-only"),
        (("train", *facesets, "-m", read_only / "model", "--preset", "tiny", "--steps", "2"), "read-only"),
        (("swap", clip, "-m", bundled_model(), "-o", tmp_path / "out.mp4", "--patches", read_only / "p"), "read-only"),
    ]:
        result = run(*args, plain_user=True)
        assert_one_line_error(result, fragment, "not writable")
        assert list(read_only.iterdir()) == []
    assert not (tmp_path / "out.mp4").exists()


@pytest.fixture(scope="module")
def damaged_faceset(work: Path) -> Path:
    """A faceset of 40 faces whose database has one page overwritten with garbage."""
    faceset = work / "damaged"
    extract([VIDEOS / "lp_d7.mp4"], faceset, ExtractOptions(spec=AlignSpec(64, "whole"), max_frames=40))
    db = faceset / DB_NAME
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) >= 4 * page, "the test needs a database of several pages"
    data[2 * page:3 * page] = np.random.default_rng(0).integers(0, 256, page, dtype=np.uint8).tobytes()
    db.write_bytes(bytes(data))
    return faceset


def test_damaged_faceset_database_is_one_line_everywhere(tmp_path, damaged_faceset, facesets, clip):
    pngs = sorted(p.name for p in damaged_faceset.glob("*.png"))
    for args in [
        ("train", damaged_faceset, facesets[1], "-m", tmp_path / "model", "--preset", "tiny", "--steps", "2"),
        ("swap", clip, "-m", bundled_model(), "-o", tmp_path / "out.mp4", "--reference", damaged_faceset),
        ("eval", "--source", clip, "--swapped", clip, "--target", damaged_faceset, "-o", tmp_path / "report"),
        ("extract", VIDEOS / "lp_d5.mp4", "-o", damaged_faceset, "--size", "64", "--max-frames", "48"),
    ]:
        result = run(*args)
        assert_one_line_error(result, DB_NAME, "damaged")
    assert sorted(p.name for p in damaged_faceset.glob("*.png")) == pngs  # extract wrote nothing into it
    assert not any((tmp_path / name).exists() for name in ("model", "out.mp4", "report"))


def test_checkpoint_without_step_is_one_line(tmp_path, facesets):
    model = tmp_path / "model"
    first = run("train", *facesets, "-m", model, "--preset", "tiny", "--steps", "2", "--batch-size", "2")
    assert first.returncode == 0, first.stderr
    checkpoint = model / CHECKPOINT_FILE
    from swapface.modeldir import read_metadata

    metadata = read_metadata(checkpoint)
    state = json.loads(metadata["swapface_train_state"])
    del state["step"]
    save_file(load_file(str(checkpoint)), str(checkpoint), metadata={"swapface_train_state": json.dumps(state)})
    result = run("train", *facesets, "-m", model, "--preset", "tiny", "--steps", "4")
    assert_one_line_error(result, CHECKPOINT_FILE, "step")


def test_training_on_one_to_three_faces_works(tmp_path, facesets):
    assert [len(Faceset.open(f)) for f in facesets] == [2, 1]
    model = tmp_path / "model"
    result = run("train", *facesets, "-m", model, "--preset", "tiny", "--steps", "3", "--batch-size", "4",
                 "--preview-every", "1")
    assert result.returncode == 0, result.stderr
    assert len(list((model / "previews").glob("*.png"))) == 3


# -- litter and leaks -------------------------------------------------------------------------------

def _wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def long_clip(work: Path) -> Path:
    frames = [f.image for f in open_media(VIDEOS / "lp_d7.mp4") if f.index < 150]
    return write_clip(work / "long.mp4", frames)


@pytest.mark.slow
def test_sigterm_during_swap_removes_its_temporary(tmp_path, long_clip):
    output = tmp_path / "out.mp4"
    process = subprocess.Popen([*SWAPFACE, "swap", str(long_clip), "-m", str(bundled_model()), "-o", str(output)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: leftovers(tmp_path) and any((tmp_path / n).stat().st_size > 0 for n in leftovers(tmp_path)))
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert leftovers(tmp_path) == [] and not output.exists()


def test_a_rerun_removes_temporaries_of_killed_writers(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    target = tmp_path / "out.mp4"
    with atomic_path(target) as tmp:  # learn the name a writer gives its temporary
        name = tmp.name
    stale = tmp_path / name.replace(f".{os.getpid()}@", f".{dead_pid}@")  # its writer was killed
    stale.write_bytes(b"half a video")
    live = tmp_path / name.replace(f".{os.getpid()}@", ".1@")  # pid 1 always runs: a writer still at work
    live.write_bytes(b"someone else is writing this")
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"done")
    assert not stale.exists() and live.exists() and target.read_bytes() == b"done"
    faceset_png = tmp_path / f".face_000001_0.png.{dead_pid}@{stale.name.split('@')[1]}"
    faceset_png.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == 1 and not faceset_png.exists() and live.exists()


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


@pytest.mark.slow
def test_extract_workers_die_with_a_killed_parent(tmp_path):
    process = subprocess.Popen([*SWAPFACE, "extract", str(VIDEOS / "lp_d6.mp4"), "-o", str(tmp_path / "faces"),
                                "--size", "64", "--workers", "2"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    def working() -> bool:  # faces committed: the workers are past start-up and analysing frames
        db_path = tmp_path / "faces" / DB_NAME
        with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(db_path)) as db:
            return db.execute("SELECT COUNT(*) FROM faces").fetchone()[0] > 0
        return False

    _wait_for(lambda: (tmp_path / "faces" / DB_NAME).exists() and working())
    workers = _descendants(process.pid)
    assert len(workers) >= 2
    process.kill()
    process.wait()
    _wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=10)


@pytest.mark.slow
def test_sigterm_stops_training_at_the_next_step(tmp_path, facesets):
    model = tmp_path / "model"
    process = subprocess.Popen([*SWAPFACE, "train", *map(str, facesets), "-m", str(model), "--preset", "tiny",
                                "--batch-size", "2", "--log-every", "100000", "--save-every", "100000",
                                "--preview-every", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    _wait_for(lambda: (model / CHECKPOINT_FILE).exists())
    time.sleep(3)  # a few dozen steps, far from any sync step
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    step = json.loads((model / "config.json").read_text())["training"]["step"]
    assert 0 < step < 100000
