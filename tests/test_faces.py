"""Detection, landmarks and alignment on real photos (package-bundled and ../shared/data/stills)."""

from __future__ import annotations

import matplotlib.cbook
import numpy as np
import pytest
import skimage.data

from swapface.faces import AlignSpec, alignment_matrix, crop_face, make_backend, transform_points
from swapface.faces.align import eye_centres, umeyama
from swapface.faces.masks import hull_mask
from swapface.media.images import read_rgb

from .conftest import STILLS

SINGLE_PERSON_STILLS = sorted(p.name for p in STILLS.glob("*") if "many-people" not in p.name
                              and p.name != "lp_d8.jpg")


@pytest.fixture(scope="module")
def backend():
    return make_backend("dlib")


def _bundled_photos() -> dict[str, np.ndarray]:
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = read_rgb(fh.name)
    return {"astronaut": skimage.data.astronaut(), "grace_hopper": hopper}


def _assert_plausible_face(face, image: np.ndarray) -> None:
    x0, y0, x1, y1 = face.bbox
    left, right = eye_centres(face.landmarks)
    mouth = face.landmarks[48:68].mean(0)
    assert left[0] < right[0], "image-left eye must be left of the other"
    assert max(left[1], right[1]) < mouth[1], "eyes must be above the mouth"
    centre = face.landmarks.mean(0)
    assert x0 <= centre[0] <= x1 and y0 <= centre[1] <= y1, "landmarks must sit inside the detection box"
    margin = 0.05 * max(image.shape[:2])  # a jaw line may run just past the edge of a tight photo
    assert face.landmarks.min() > -margin
    assert (face.landmarks.max(0) < np.array(image.shape[1::-1]) + margin).all()


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_bundled_photo_has_one_face(backend, name):
    image = _bundled_photos()[name]
    faces = backend.detect(image)
    assert len(faces) == 1
    _assert_plausible_face(faces[0], image)


@pytest.mark.parametrize("name", SINGLE_PERSON_STILLS)
def test_single_person_still_has_one_face(backend, name):
    image = read_rgb(STILLS / name)
    faces = backend.detect(image)
    assert len(faces) == 1, f"{name}: found {len(faces)} faces"
    _assert_plausible_face(faces[0], image)


def test_hard_pose_found_by_cnn_detector():
    """A pouting face with glasses that HOG misses; the MMOD CNN detector (the slower option) finds it."""
    image = read_rgb(STILLS / "lp_d8.jpg")
    faces = make_backend("dlib", detector="cnn", min_face=160).detect(image)
    assert len(faces) == 1
    _assert_plausible_face(faces[0], image)


def test_group_selfie_has_several_faces(backend):
    image = read_rgb(STILLS / "df_selfie-many-people.jpg")
    faces = backend.detect(image)
    assert len(faces) >= 4
    centres = np.array([f.landmarks.mean(0) for f in faces])
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(len(faces)) * 1e9
    assert distances.min() > 40, "each detection must be a different face"


def test_identity_embeddings_separate_people(backend):
    def embedding(name: str) -> np.ndarray:
        image = read_rgb(STILLS / name)
        return backend.embed(image, backend.detect(image)[0].landmarks)

    jolie = [embedding(f"df_jolie_{i}.jpg") for i in (1, 2, 3)]
    damon = [embedding(f"df_damon_{i}.jpg") for i in (1, 2, 3)]
    same = [np.linalg.norm(a - b) for i, a in enumerate(jolie) for b in jolie[i + 1:]]
    different = [np.linalg.norm(a - b) for a in jolie for b in damon]
    assert max(same) < 0.6 < min(different)


def test_umeyama_recovers_a_similarity_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 500, (51, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.5, -40.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rotation.T + shift
    matrix = umeyama(src, dst)
    np.testing.assert_allclose(matrix[:, :2], rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-7)


@pytest.mark.parametrize("coverage", ["tight", "whole", "head"])
def test_alignment_puts_landmarks_on_template(backend, coverage):
    image = skimage.data.astronaut()
    face = backend.detect(image)[0]
    spec = AlignSpec(256, coverage)
    matrix = alignment_matrix(face.landmarks, spec)
    crop = crop_face(image, matrix, spec.size)
    assert crop.shape == (256, 256, 3)
    aligned = transform_points(face.landmarks, matrix)
    for got, want in zip(eye_centres(aligned), eye_centres(spec.template()), strict=True):
        assert np.linalg.norm(got - want) < 6
    # The crop really shows the face: landmarks found again in the crop agree with the warped ones.
    box = np.concatenate([aligned.min(0), aligned.max(0)])
    refound = backend.landmarks(crop, box)
    assert np.abs(refound[17:] - aligned[17:]).mean() < 6


def test_wider_coverage_shows_more_of_the_head(backend):
    image = skimage.data.astronaut()
    landmarks = backend.detect(image)[0].landmarks
    areas = []
    for coverage in ("tight", "whole", "head"):
        spec = AlignSpec(256, coverage)
        aligned = transform_points(landmarks, alignment_matrix(landmarks, spec))
        areas.append(hull_mask(aligned, (256, 256)).sum())
    assert areas[0] > areas[1] > areas[2]


def test_align_spec_rejects_bad_sizes():
    with pytest.raises(ValueError):
        AlignSpec(32)
    with pytest.raises(ValueError):
        AlignSpec(256, "body")
