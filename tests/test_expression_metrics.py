"""The expression, sharpness and skin-light metrics on real faces (lp_d6 and lp_d9 crops)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from swapface.eval.expression import SIGNALS, expression_scores, expression_signals
from swapface.eval.heldout import fit_in_crop
from swapface.eval.metrics import region_light_difference, sharpness_ratio
from swapface.faces import crop_face, make_backend
from swapface.faces.align import invert
from swapface.faces.masks import hull_mask
from swapface.faceset import Faceset


def _faces(path):
    with Faceset.open(path) as faceset:
        records = faceset.records()
        return records, [faceset.load_image(r) for r in records]


def test_a_clip_against_itself_moves_exactly_alike(faceset_a):
    records, _ = _faces(faceset_a)
    points = np.stack([r.crop_landmarks for r in records])
    scores = expression_scores(points, points)
    assert scores.frames == len(records) >= 40
    for name in SIGNALS:
        assert scores.correlation[name] == pytest.approx(1.0)
        assert scores.mean_abs_difference[name] == 0.0
    assert scores.dynamic_nme == 0.0
    assert math.isnan(scores.blink_agreement) or scores.blink_agreement == 1.0


def test_a_frozen_face_pasted_over_a_talking_clip_does_not_follow_its_mouth(faceset_a):
    """Frame 0's face pasted into every frame (warped to each frame's head position and cropped back, as a
    swap would be): landmarks re-fitted by dlib on both, scored as a swap."""
    records, crops = _faces(faceset_a)
    backend = make_backend("dlib")
    size = crops[0].shape[0]
    source, frozen = [], []
    for record, crop in zip(records, crops, strict=True):
        frame = cv2.warpAffine(crops[0], invert(record.matrix), (record.frame_width, record.frame_height),
                               flags=cv2.INTER_LINEAR)
        pasted = crop_face(frame, record.matrix, size)
        source.append(fit_in_crop(backend, crop, record.crop_landmarks)[0])
        frozen.append(fit_in_crop(backend, pasted, records[0].crop_landmarks)[0])
    source, frozen = np.stack(source), np.stack(frozen)
    mouth = expression_signals(source)[:, 0]
    assert mouth.std() > 0.02  # the source talks: its mouth opening moves
    pasted = expression_scores(source, frozen)
    itself = expression_scores(source, source)
    assert abs(pasted.correlation["mouth_open"]) < 0.3 and itself.correlation["mouth_open"] == pytest.approx(1.0)
    assert pasted.dynamic_nme > 0.02 and itself.dynamic_nme == 0.0


def test_sharpness_of_real_blurred_and_other_real_faces(faceset_b):
    records, crops = _faces(faceset_b)
    masks = [hull_mask(r.crop_landmarks, crops[0].shape[:2]) for r in records]
    half = len(crops) // 2
    first, second = slice(0, half), slice(half, 2 * half)
    assert sharpness_ratio(crops, masks, crops, masks) == pytest.approx(1.0)
    other_frames = sharpness_ratio(crops[first], masks[first], crops[second], masks[second])
    assert 0.6 < other_frames < 1.6  # other frames of the same footage: about as sharp
    blurred = [cv2.GaussianBlur(c, (0, 0), 1.5) for c in crops]
    assert sharpness_ratio(blurred, masks, crops, masks) < 0.3
    with pytest.raises(ValueError, match="same size"):
        sharpness_ratio([c[:64, :64] for c in crops], masks, crops, masks)


def test_skin_light_per_region(faceset_b):
    records, crops = _faces(faceset_b)
    crop, points = crops[0], records[0].crop_landmarks
    same = region_light_difference(crop, crop, points)
    assert sorted(same) == ["cheek_left", "cheek_right", "chin", "forehead"]
    assert all(v == (0.0, 0.0) for v in same.values())
    brighter = np.clip(crop.astype(np.int16) + 25, 0, 255).astype(np.uint8)
    for brightness, colour in region_light_difference(brighter, crop, points).values():
        assert brightness > 12 and colour < 4
    redder = crop.copy()
    redder[..., 0] = np.clip(crop[..., 0].astype(np.int16) + 40, 0, 255)
    assert all(colour > 8 for _, colour in region_light_difference(redder, crop, points).values())

