"""Swap building blocks on real faces: inverse-warp blending, colour transfer, masks, smoothing, tracking."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from swapface.errors import SwapfaceError
from swapface.eval.metrics import high_frequency_energy
from swapface.faces import AlignSpec, alignment_matrix, crop_face, make_backend, transform_points
from swapface.faces.masks import hull_mask
from swapface.media import open_media
from swapface.swap.blend import BLEND_MODES, paste_face
from swapface.swap.color import transfer_color
from swapface.swap.masks import crop_pixels, face_mask
from swapface.swap.options import SwapOptions
from swapface.swap.sharpen import SHARPEN_RADIUS, sharpen
from swapface.swap.smoothing import OneEuroFilter, landmark_filter
from swapface.swap.tracking import FaceTracker

from .conftest import STILLS, VIDEOS


@pytest.fixture(scope="module")
def face() -> tuple[np.ndarray, np.ndarray]:
    """A real photo (lp_d9.jpg, 720x720) and its 68 landmarks."""
    image = next(open_media(STILLS / "lp_d9.jpg")).image
    faces = make_backend("dlib").detect(image)
    assert len(faces) == 1
    return image, faces[0].landmarks


def _crop_and_mask(image: np.ndarray, landmarks: np.ndarray, size: int = 128):
    spec = AlignSpec(size, "whole")
    matrix = alignment_matrix(landmarks, spec)
    crop = crop_face(image, matrix, size)
    mask = face_mask("hull", None, transform_points(landmarks, matrix), size, crop_pixels(4, size),
                     crop_pixels(12, size)).alpha
    return matrix, crop, mask


@pytest.mark.parametrize("mode", BLEND_MODES)
def test_pasting_the_face_back_is_exact_in_place_and_untouched_elsewhere(face, mode: str) -> None:
    """The inverse warp puts each crop pixel back where it came from (sub-pixel): pasting a face's own
    crop changes the frame only by resampling blur, and nothing outside the returned region."""
    image, landmarks = face
    matrix, crop, mask = _crop_and_mask(image, landmarks, 256)
    out = image.copy()
    region = paste_face(out, crop, mask, matrix, mode)
    assert region is not None
    x0, y0, x1, y1 = region
    outside = np.ones(image.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], image[outside])
    inside = hull_mask(landmarks, image.shape[:2]) > 0.99
    diff = np.abs(out.astype(int) - image.astype(int))[inside]
    assert diff.mean() < 2.5
    # A half-pixel misplacement of the paste would give a much larger error on this textured face.
    shifted = matrix.copy()
    shifted[:, 2] += shifted[:, :2] @ np.array([1.0, 1.0])
    wrong = image.copy()
    paste_face(wrong, crop, mask, shifted, mode)
    assert np.abs(wrong.astype(int) - image.astype(int))[inside].mean() > 1.5 * diff.mean()


def test_blending_a_recoloured_face_leaves_no_step_at_the_mask_edge(face) -> None:
    """Paste a brightened face: laplacian and poisson blends spread the change smoothly, so the
    largest jump across the mask boundary is below the hard paste's."""
    image, landmarks = face
    matrix, crop, mask = _crop_and_mask(image, landmarks, 256)
    bright = np.clip(crop.astype(int) + 40, 0, 255).astype(np.uint8)
    hard = (mask > 0.5).astype(np.float32)
    edge_of = {}
    for mode, m in (("hard", hard), ("laplacian", mask), ("poisson", mask), ("feather", mask)):
        out = image.copy()
        paste_face(out, bright, m, matrix, "feather" if mode == "hard" else mode)
        change = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(np.float32) - cv2.cvtColor(
            image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        gradient = np.hypot(cv2.Sobel(change, cv2.CV_32F, 1, 0), cv2.Sobel(change, cv2.CV_32F, 0, 1))
        edge_of[mode] = float(np.percentile(gradient, 99.9))
    for mode in ("laplacian", "poisson", "feather"):
        assert edge_of[mode] < 0.6 * edge_of["hard"], edge_of


@pytest.mark.parametrize("mode", BLEND_MODES)
def test_kept_pixels_stay_exactly_as_they_were(face, mode: str) -> None:
    """An occluder inside the face (here: a square over the mouth, cut out of the mask and kept) is left
    bit-exact, though a multi-band blend spreads the brightened face's coarse colour past the mask's edge."""
    image, landmarks = face
    matrix, crop, mask = _crop_and_mask(image, landmarks, 256)
    bright = np.clip(crop.astype(int) + 40, 0, 255).astype(np.uint8)
    mouth = transform_points(landmarks[48:68], matrix)
    (x0, y0), (x1, y1) = mouth.min(0).astype(int), mouth.max(0).astype(int)
    keep = np.zeros_like(mask)
    keep[y0:y1, x0:x1] = 1.0
    kept_in_frame = cv2.warpAffine(keep, matrix, image.shape[1::-1], flags=cv2.WARP_INVERSE_MAP) > 0.999
    kept_in_frame = cv2.erode(kept_in_frame.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # off the box's edge
    for protect in (None, keep):
        out = image.copy()
        paste_face(out, bright, mask * (1 - keep), matrix, mode, protect)
        changed = np.abs(out.astype(int) - image.astype(int)).max(2)[kept_in_frame]
        if protect is None:
            assert changed.max() > 8 or mode != "laplacian"  # what `keep` is for: the coarse bands reach in
        else:
            assert changed.max() == 0, mode


def test_sharpening_adds_detail_and_zero_changes_nothing(face) -> None:
    image, landmarks = face
    _, crop, mask = _crop_and_mask(image, landmarks)
    soft = cv2.GaussianBlur(crop, (0, 0), 1.5)
    energy = {amount: high_frequency_energy(sharpen(soft, amount, crop_pixels(SHARPEN_RADIUS, 128)), mask)
              for amount in (0.0, 0.5, 1.0)}
    assert energy[0.0] < energy[0.5] < energy[1.0] and energy[1.0] > 1.4 * energy[0.0], energy
    assert sharpen(soft, 0.0, 1.0) is soft
    with pytest.raises(SwapfaceError, match="--sharpen"):
        SwapOptions(sharpen=-1)


@pytest.mark.parametrize("mode", ["reinhard", "light", "histogram"])
def test_colour_transfer_matches_the_target_inside_the_mask(face, mode: str) -> None:
    image, landmarks = face
    _, crop, mask = _crop_and_mask(image, landmarks)
    cast = np.clip(crop.astype(int) * np.array([1.15, 0.85, 0.8]) + 10, 0, 255).astype(np.uint8)
    fixed = transfer_color(cast, crop, mask, mode)
    inside = mask > 0.5
    before = np.abs(cast[inside].mean(0) - crop[inside].mean(0)).max()
    after = np.abs(fixed[inside].mean(0) - crop[inside].mean(0)).max()
    assert before > 15 and after < 3, (before, after)
    assert np.array_equal(transfer_color(cast, crop, mask, "none"), cast)


def test_light_mode_moves_the_light_and_keeps_the_detail(face) -> None:
    """The same real face lit from the left replaces one lit from the right: "light" carries the target's
    light across the face (which Reinhard cannot: both have the same mean), and keeps the face's own
    detail."""
    image, landmarks = face
    _, crop, mask = _crop_and_mask(image, landmarks)
    ramp = np.linspace(0.6, 1.4, crop.shape[1])[None, :, None]
    lit_right = np.clip(crop * ramp, 0, 255).astype(np.uint8)
    lit_left = np.clip(crop * ramp[:, ::-1], 0, 255).astype(np.uint8)
    inside = mask > 0.5

    def left_minus_right(rgb: np.ndarray) -> float:
        grey = rgb.astype(float).mean(2)
        half = crop.shape[1] // 2
        return grey[:, :half][inside[:, :half]].mean() - grey[:, half:][inside[:, half:]].mean()

    def detail(rgb: np.ndarray) -> np.ndarray:
        grey = rgb.astype(np.float32).mean(2)
        return (grey - cv2.GaussianBlur(grey, (0, 0), 2))[inside]

    relit = transfer_color(lit_left, lit_right, mask, "light")
    flat = transfer_color(lit_left, lit_right, mask, "reinhard")
    target, before = left_minus_right(lit_right), left_minus_right(lit_left)
    assert before - target > 30  # the two lights really differ (grey levels, left half minus right half)
    error, reinhard_error = abs(left_minus_right(relit) - target), abs(left_minus_right(flat) - target)
    assert error < 0.25 * (before - target) and error < 0.5 * reinhard_error, (before, target, error, reinhard_error)
    assert np.corrcoef(detail(relit), detail(lit_left))[0, 1] > 0.9


def test_mask_modes_erode_and_scale(face) -> None:
    image, landmarks = face
    spec = AlignSpec(128, "whole")
    matrix = alignment_matrix(landmarks, spec)
    points = transform_points(landmarks, matrix)
    learned = np.zeros((128, 128), np.float32)
    learned[:, :64] = 1.0  # a "learned" mask covering the left half only
    hull = face_mask("hull", None, points, 128).alpha
    both = face_mask("both", learned, points, 128).alpha
    assert both.sum() < 0.6 * hull.sum() and np.all(both <= hull + 1e-6)
    eroded = face_mask("hull", None, points, 128, erode_px=crop_pixels(16, 128)).alpha
    assert eroded.sum() < 0.9 * hull.sum()
    assert crop_pixels(8, 256) == 2 * crop_pixels(8, 128)  # relative to the face, whatever the crop


def test_one_euro_steadies_a_still_face_and_follows_a_move() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(100, 300, (68, 2))
    smoother = landmark_filter(1.0)
    assert isinstance(smoother, OneEuroFilter)
    raw_jitter, smooth_jitter, previous, previous_raw = [], [], None, None
    for i in range(60):  # 2 s at 30 fps, 1 px landmark noise
        raw = base + rng.normal(0, 1.0, base.shape)
        out = smoother(raw, i / 30, scale=200.0)
        if previous is not None:
            raw_jitter.append(np.abs(raw - previous_raw).mean())
            smooth_jitter.append(np.abs(out - previous).mean())
        previous, previous_raw = out, raw
    assert np.mean(smooth_jitter) < 0.5 * np.mean(raw_jitter)
    for i in range(60, 66):  # the head moves 40 px and stays: caught up within 0.2 s
        out = smoother(base + 40.0, i / 30, scale=200.0)
    assert np.abs(out - (base + 40.0)).mean() < 2.0
    assert landmark_filter(0.0) is None


def test_tracker_keeps_one_identity_drops_vanished_faces_and_smooths(tmp_path) -> None:
    backend = make_backend("dlib")
    tracker = FaceTracker(backend, make_backend("dlib", min_score=0.0), detect_every=5, smooth=1.0)
    ids, detected, raw_motion, smooth_motion, previous = [], [], [], [], None
    for frame in open_media(VIDEOS / "lp_d3.mp4"):
        if frame.index == 40:
            break
        image = frame.image if frame.index not in range(20, 24) else np.zeros_like(frame.image)
        faces = tracker.update(image, frame.time)
        if frame.index in range(20, 24):
            assert faces == [], f"a face was kept on blank frame {frame.index}"
            previous = None
            continue
        assert len(faces) == 1, frame.index
        ids.append(faces[0].track_id)
        detected.append(faces[0].detected)
        if previous is not None:
            raw_motion.append(np.abs(faces[0].raw_landmarks - previous[1]).mean())
            smooth_motion.append(np.abs(faces[0].landmarks - previous[0]).mean())
        previous = (faces[0].landmarks, faces[0].raw_landmarks)
    assert set(ids[:20]) == {0} and set(ids[20:]) == {1}  # one track before the gap, a new one after
    assert np.mean(smooth_motion) < np.mean(raw_motion)


@pytest.mark.parametrize("scale", [0.8, 0.45, 0.13])
def test_crop_samples_exactly_where_the_matrix_says(scale: float) -> None:
    """On a linear ramp (which area filters and bilinear sampling reproduce exactly), crop pixel
    (u, v) must show source point matrix^-1 (u, v), also when the crop shrinks the face 8x; the
    paste-back uses that same matrix, so any error here would shift the swapped face."""
    yy, xx = np.mgrid[0:1080, 0:1920].astype(np.float32)
    ramp = np.dstack([xx / 8, yy / 8, (xx + yy) / 16])
    angle, size = 0.2, 128
    matrix = scale * np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0]])
    matrix[:, 2] = [size / 2, size / 2] - matrix[:, :2] @ [960.25, 540.6]
    crop = crop_face(ramp, matrix, size)
    u, v = np.meshgrid(np.arange(size), np.arange(size))
    inverse = cv2.invertAffineTransform(matrix)
    x = inverse[0, 0] * u + inverse[0, 1] * v + inverse[0, 2]
    y = inverse[1, 0] * u + inverse[1, 1] * v + inverse[1, 2]
    inner = (slice(8, -8), slice(8, -8))
    assert np.abs(crop[..., 0] * 8 - x)[inner].max() < 0.15
    assert np.abs(crop[..., 1] * 8 - y)[inner].max() < 0.15
