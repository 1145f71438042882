"""The evaluation metrics on real faces: each one moves the right way when the thing it measures changes."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from swapface.eval.metrics import (
    FACE_MODEL_3D,
    MAX_PSNR,
    POSE_POINTS,
    SEAM_PARTS,
    HeadPose,
    angle_difference,
    boundary_band,
    camera_matrix,
    flicker_ratio,
    head_pose,
    identity_distance,
    landmark_nme,
    psnr,
    seam_score,
    ssim,
    summarise,
    temporal_change,
)
from swapface.faces import AlignSpec, alignment_matrix, crop_face, make_backend, transform_points
from swapface.faces.masks import hull_mask
from swapface.faces.template import FLIP_68
from swapface.media import open_media
from swapface.media.images import read_rgb

from .conftest import STILLS, VIDEOS


@pytest.fixture(scope="module")
def backend():
    return make_backend("dlib")


@pytest.fixture(scope="module")
def face(backend):
    """lp_d19.jpg (a real photo), its 68 landmarks, and a 256 px aligned crop with its hull mask."""
    image = read_rgb(STILLS / "lp_d19.jpg")
    landmarks = max(backend.detect(image), key=lambda f: f.size).landmarks
    spec = AlignSpec(256, "whole")
    matrix = alignment_matrix(landmarks, spec)
    crop = crop_face(image, matrix, spec.size)
    mask = hull_mask(transform_points(landmarks, matrix), (spec.size, spec.size))
    return image, landmarks, crop, mask


def test_psnr_and_ssim_fall_as_a_real_face_blurs(face):
    crop = face[2]
    assert psnr(crop, crop) == MAX_PSNR and ssim(crop, crop) == pytest.approx(1.0)
    blurred = [cv2.GaussianBlur(crop, (0, 0), sigma) for sigma in (0.7, 2.0, 5.0)]
    psnrs = [psnr(b, crop) for b in blurred]
    ssims = [ssim(b, crop) for b in blurred]
    assert psnrs == sorted(psnrs, reverse=True) and psnrs[-1] < 30 < 40 < psnrs[0]
    assert ssims == sorted(ssims, reverse=True) and ssims[-1] < 0.9
    # uint8 and [0, 1] floats, HWC and CHW, single and batch agree.
    as_float = [b.astype(np.float32) / 255 for b in (blurred[1], crop)]
    assert psnr(*as_float) == pytest.approx(psnrs[1], abs=1e-3)
    assert ssim(*(x.transpose(2, 0, 1) for x in as_float)) == pytest.approx(ssims[1], abs=1e-3)
    batch = ssim(np.stack([blurred[0], blurred[2]]), np.stack([crop, crop]))
    assert batch == pytest.approx((ssims[0] + ssims[2]) / 2, abs=1e-6)


def test_identity_distance_separates_people(backend, face):
    image, landmarks = face[:2]
    same_person = next(open_media(VIDEOS / "lp_d18.mp4")).image  # lp_d18 and lp_d19.jpg: the same man
    other = read_rgb(STILLS / "df_dicaprio_1.jpg")
    reference = backend.embed(image, landmarks)
    embeddings = np.stack([backend.embed(i, max(backend.detect(i), key=lambda f: f.size).landmarks)
                           for i in (same_person, other)])
    distances = identity_distance(embeddings, reference)
    assert distances.shape == (2,)
    assert distances[0] < 0.6 < distances[1]
    assert identity_distance(embeddings[1], reference) == pytest.approx(distances[1])


def test_nme_is_relative_to_the_inter_ocular_distance(face):
    landmarks = face[1]
    assert landmark_nme(landmarks, landmarks) == 0.0
    left, right = landmarks[36:42].mean(0), landmarks[42:48].mean(0)
    iod = np.linalg.norm(right - left)
    assert landmark_nme(landmarks + [0.1 * iod, 0], landmarks) == pytest.approx(0.1)
    # The same relative error on a face twice the size is the same NME.
    assert landmark_nme(2 * landmarks + [0.2 * iod, 0], 2 * landmarks) == pytest.approx(0.1)
    mouth_open = landmarks.copy()
    mouth_open[57:60] += [0, 0.3 * iod]
    assert 0 < landmark_nme(mouth_open, landmarks) < 0.05


def _project(rotation_deg: tuple[float, float, float], size: tuple[int, int]) -> np.ndarray:
    yaw, pitch, roll = np.radians(rotation_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rz = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
    points = (rz @ ry @ rx @ FACE_MODEL_3D.T).T + [0.5, -1.0, 60.0]
    image_points = (camera_matrix(size) @ points.T).T
    landmarks = np.zeros((68, 2))
    landmarks[POSE_POINTS] = image_points[:, :2] / image_points[:, 2:]
    return landmarks


@pytest.mark.parametrize("angles", [(0, 0, 0), (25, 0, 0), (0, -15, 0), (0, 0, 12), (-30, 10, -5)])
def test_head_pose_recovers_known_rotations(angles):
    pose = head_pose(_project(angles, (480, 640)), (480, 640))
    assert pose.as_array() == pytest.approx(np.array(angles, float), abs=1e-3)


def test_head_pose_on_a_real_face_follows_flips_and_tilts(face):
    image, landmarks = face[:2]
    height, width = image.shape[:2]
    pose = head_pose(landmarks, (height, width))
    mirrored = landmarks[FLIP_68] * [-1, 1] + [width - 1, 0]
    flipped = head_pose(mirrored, (height, width))
    assert flipped.yaw == pytest.approx(-pose.yaw, abs=1.0)
    assert flipped.roll == pytest.approx(-pose.roll, abs=1.0)
    centre = landmarks.mean(0)
    turn = cv2.getRotationMatrix2D(tuple(centre), -15, 1.0)  # 15 degrees clockwise on screen
    tilted = head_pose(transform_points(landmarks, turn), (height, width))
    assert angle_difference(tilted, pose).roll == pytest.approx(15, abs=2.0)
    assert angle_difference(HeadPose(179, 0, 0), HeadPose(-179, 0, 0)).yaw == pytest.approx(2)


def test_temporal_change_sees_sub_pixel_motion(face):
    crop, mask = face[2], face[3]
    assert temporal_change(crop, crop, mask) == 0.0
    changes = []
    for shift in (0.25, 0.5, 1.0):
        moved = cv2.warpAffine(crop, np.float32([[1, 0, shift], [0, 1, 0]]), crop.shape[1::-1],
                               borderMode=cv2.BORDER_REFLECT)
        changes.append(temporal_change(crop, moved, mask))
    assert 0 < changes[0] < changes[1] < changes[2]


def test_flicker_ratio_is_a_ratio_of_sums():
    assert flicker_ratio([1.0, 2.0], [1.0, 2.0]) == pytest.approx(1.0)
    assert flicker_ratio([0.0, 0.0], [0.0, 0.0]) == pytest.approx(1.0)
    # One still source pair does not blow the ratio up.
    assert flicker_ratio([0.5, 2.0, 2.0], [0.0, 2.0, 2.0]) == pytest.approx(4.5 / 4.0, rel=1e-5)


def test_seam_ranks_hard_paste_above_feathered_blend(face):
    crop, mask = face[2], face[3]
    band = 10
    none = seam_score(crop, crop, mask, band)
    assert none.colour == 0 and none.gradient == 0
    # A face whose colour does not match its surroundings, pasted with a hard edge and with a soft one.
    recoloured = np.clip(crop.astype(np.float32) + [35, 10, -25], 0, 255)
    hard_alpha = (mask > 0.5).astype(np.float32)[..., None]
    soft_alpha = cv2.GaussianBlur(cv2.erode(hard_alpha, np.ones((15, 15))), (0, 0), 6)[..., None]
    hard = (recoloured * hard_alpha + crop * (1 - hard_alpha)).round().astype(np.uint8)
    soft = (recoloured * soft_alpha + crop * (1 - soft_alpha)).round().astype(np.uint8)
    hard_score, soft_score = seam_score(hard, crop, mask, band), seam_score(soft, crop, mask, band)
    assert hard_score.colour > 25 and hard_score.gradient > 2 * soft_score.gradient
    assert hard_score.colour > 1.5 * soft_score.colour > 0
    # Changing the face well inside (beyond the band and its smoothing) adds no seam.
    margin = band + 14
    inner = cv2.erode((mask > 0.5).astype(np.uint8), np.ones((2 * margin + 1, 2 * margin + 1))).astype(bool)
    changed_inside = crop.copy()
    changed_inside[inner] = 255 - changed_inside[inner]
    assert seam_score(changed_inside, crop, mask, band).gradient < 0.05 * hard_score.gradient + 1e-9
    assert boundary_band(mask, band).sum() > 0


def test_seam_says_which_part_of_the_outline_it_is_on(face):
    image, landmarks, crop, mask = face
    points = transform_points(landmarks, alignment_matrix(landmarks, AlignSpec(256, "whole")))
    band = 10
    # A chin and lower jaw of another colour, pasted hard below the mouth: a seam along the jaw only.
    lower = (np.arange(crop.shape[0])[:, None] > points[48:68, 1].max() + 5) & (mask > 0.5)
    recoloured = crop.copy()
    recoloured[lower] = np.clip(crop[lower].astype(np.int16) + [40, 15, -30], 0, 255).astype(np.uint8)
    score = seam_score(recoloured, crop, mask, band, points)
    assert set(score.parts) == set(SEAM_PARTS)
    assert score.parts["jaw"] > 12 and score.parts["brows"] < 1.0
    assert score.parts["jaw"] > 3 * score.parts["sides"] and score.parts["jaw"] > score.colour
    # The same change over the whole face: every part of the outline shows it; and no landmarks, no parts.
    whole = np.where((mask > 0.5)[..., None], np.clip(crop.astype(np.int16) + [40, 15, -30], 0, 255), crop)
    everywhere = seam_score(whole.astype(np.uint8), crop, mask, band, points)
    assert min(everywhere.parts.values()) > 20
    assert seam_score(recoloured, crop, mask, band).parts == {}


def test_summaries_report_the_worst_frames():
    values = list(range(1, 101)) + [math.nan]
    lower_better = summarise(values)
    assert lower_better.count == 100 and lower_better.mean == pytest.approx(50.5)
    assert lower_better.median == pytest.approx(50.5)
    assert lower_better.worst5 == pytest.approx(np.mean([96, 97, 98, 99, 100]))
    assert summarise(values, higher_is_better=True).worst5 == pytest.approx(3.0)
    assert summarise([7.0]).worst5 == 7.0
    assert summarise([math.nan]).count == 0
