"""Face backends on real stills and the crowd clip: recall against hand counts, the 478-point mesh and
its regions, and the backend/scheme records that keep facesets, models and swap consistent."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from swapface.errors import InputError
from swapface.faces import BACKENDS, DEFAULT_BACKEND, SCHEMES, AlignSpec, make_backend
from swapface.faces.masks import dense_face_mask, dense_regions, hull_mask
from swapface.faces.mesh import LEFT_EYE_OUTLINE, LEFT_IRIS, RIGHT_EYE_OUTLINE, RIGHT_IRIS
from swapface.faceset import Faceset
from swapface.faceset.store import shared_backend
from swapface.media import open_media
from swapface.media.images import read_rgb
from swapface.modeldir import face_backend
from tests.conftest import STILLS, VIDEOS

# Hand counts (looked at each image): every still shows one face, but the selfie, which shows 7 (two of
# them cut in half by the frame's edge). Crowd clip frames: faces with the eyes or a clear profile
# visible, ignoring the tiny ones at the back: 8 in frame 0, 6 in frame 52, 8 in frame 104.
MANY = {"df_selfie-many-people.jpg": 7}
CROWD = {0: 8, 52: 6, 104: 8}
# Least recall each backend must keep (what it measured when these counts were made, 2026-11-26):
# single-face stills found, selfie faces found, crowd faces found (of 22).
FLOORS = {"mediapipe": (28, 4, 12), "dlib": (27, 4, 6)}


@pytest.fixture(scope="module")
def stills() -> dict[str, np.ndarray]:
    files = sorted(STILLS.glob("*.*"))
    assert len(files) == 29, f"expected the 29 shared stills in {STILLS}"
    return {f.name: read_rgb(f) for f in files}


@pytest.fixture(scope="module")
def crowd() -> dict[int, np.ndarray]:
    frames = {}
    for frame in open_media(VIDEOS / "facenet_crowd.mp4"):
        if frame.index in CROWD:
            frames[frame.index] = frame.image
        if frame.index >= max(CROWD):
            break
    assert set(frames) == set(CROWD)
    return frames


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BACKENDS))
def test_recall_against_hand_counts(name, stills, crowd):
    backend = make_backend(name)
    counts = {still: len(backend.detect(image)) for still, image in stills.items()}
    for still, found in counts.items():
        assert found <= MANY.get(still, 1), f"{name}: {found} faces in {still}: false detections"
    singles = sum(found for still, found in counts.items() if still not in MANY)
    crowd_found = {index: len(backend.detect(image)) for index, image in crowd.items()}
    for index, found in crowd_found.items():
        assert found <= CROWD[index], f"{name}: {found} faces in crowd frame {index}, hand count {CROWD[index]}"
    floor_singles, floor_selfie, floor_crowd = FLOORS[name]
    assert singles >= floor_singles
    assert counts["df_selfie-many-people.jpg"] >= floor_selfie
    assert sum(crowd_found.values()) >= floor_crowd


def test_mesh_points_irises_and_the_68_view(stills):
    image = stills["lp_d19.jpg"]  # frontal, mouth wide open
    face, = make_backend("mediapipe").detect(image)
    assert face.dense.shape == (478, 2) and face.landmarks.shape == (68, 2)
    reference, = make_backend("dlib").detect(image)
    gap = np.linalg.norm(face.landmarks - reference.landmarks, axis=1).mean() / reference.size
    assert gap < 0.04  # the 68-point view lands on dlib's points (2-3% of the face apart)
    for iris, outline in ((LEFT_IRIS, LEFT_EYE_OUTLINE), (RIGHT_IRIS, RIGHT_EYE_OUTLINE)):
        contour = face.dense[outline].astype(np.float32)
        assert cv2.pointPolygonTest(contour, tuple(map(float, face.dense[iris[0]])), False) > 0
    regions = dense_regions(face.dense, image.shape[:2])
    oval = dense_face_mask(face.dense, image.shape[:2])
    assert regions["mouth"].sum() > 0.03 * oval.sum()  # the open mouth's interior
    for side in ("left", "right"):
        assert 0 < regions[f"{side}_iris"].sum() < regions[f"{side}_eye"].sum()
    # The oval follows the jaw: nothing of it hangs below the chin that the 68-point hull ends at.
    hull = hull_mask(reference.landmarks, image.shape[:2])
    chin = int(reference.landmarks[8, 1])
    assert oval[chin + 10:].sum() < 0.01 * oval.sum()
    assert (oval * hull).sum() > 0.8 * oval[int(reference.landmarks[19, 1]):].sum()


def test_backend_choices_come_from_one_list():
    assert DEFAULT_BACKEND in BACKENDS and set(SCHEMES) == set(BACKENDS)
    with pytest.raises(ValueError, match="available: mediapipe, dlib"):
        make_backend("insightface")
    with pytest.raises(ValueError, match="hog, cnn"):
        make_backend("dlib", detector="full")


def test_facesets_and_models_record_their_backend(tmp_path):
    spec = AlignSpec(64, "whole")
    Faceset.create(tmp_path / "a", spec, "mediapipe").close()
    Faceset.create(tmp_path / "b", spec, "dlib").close()
    with Faceset.open(tmp_path / "a") as faceset:
        assert (faceset.backend, faceset.scheme) == ("mediapipe", "mediapipe478")
    with pytest.raises(InputError, match="made with the mediapipe face backend"):
        Faceset.create(tmp_path / "a", spec, "dlib")  # resuming with another backend
    assert shared_backend([tmp_path / "a", tmp_path / "a"]) == {"backend": "mediapipe", "scheme": "mediapipe478"}
    with pytest.raises(InputError, match="extract both with the same --backend"):
        shared_backend([tmp_path / "a", tmp_path / "b"])
    model = tmp_path / "model"
    model.mkdir()
    config = {"format": "swapface-model", "model": {}, "training": {"faces": shared_backend([tmp_path / "a"])}}
    (model / "config.json").write_text(json.dumps(config))
    assert face_backend(model) == "mediapipe"
    with pytest.raises(InputError, match="swap with --backend mediapipe"):
        face_backend(model, "dlib")
    config["training"] = {}  # a model from before the choice: its faces were dlib's
    (model / "config.json").write_text(json.dumps(config))
    assert face_backend(model) == "dlib"


def test_extraction_keeps_the_mesh_points(tmp_path):
    from swapface.faceset.extract import ExtractOptions, extract

    out = tmp_path / "fs"
    extract([STILLS / "lp_d19.jpg"], out, ExtractOptions(spec=AlignSpec(128, "whole")))
    with Faceset.open(out) as faceset:
        record, = faceset.records()
        assert faceset.backend == DEFAULT_BACKEND and record.dense.shape == (478, 2)
        mouth = dense_regions(record.crop_dense(), (128, 128))["mouth"]
        assert mouth.sum() > 50  # the wide-open mouth, in crop pixels


def test_swap_refuses_another_backend_than_the_models_in_one_line(tmp_path):
    import shutil

    import swapface
    from tests.test_extract import assert_one_line_error, run_cli

    model = tmp_path / "model"
    shutil.copytree(Path(swapface.__file__).parent / "assets" / "demo_model", model)
    config = json.loads((model / "config.json").read_text())
    config["training"]["faces"] = {"backend": "mediapipe", "scheme": "mediapipe478"}
    (model / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out.png"
    result = run_cli("swap", STILLS / "lp_d9.jpg", "-m", model, "-o", out, "--backend", "dlib")
    assert_one_line_error(result, "config.json", "swap with --backend mediapipe")
    assert not out.exists()
    result = run_cli("swap", STILLS / "lp_d9.jpg", "-m", model, "-o", out, "--backend", "opencv")
    assert_one_line_error(result, "unknown face backend 'opencv'")
