"""Face masks from landmarks: the hull used as the learned mask's label, for blending and for seams.

No PyPI package ships face-parsing weights, so masks come from the 68 landmarks: the jaw line closed
over the brows, lifted towards the forehead so a "whole face" crop's mask covers it too.
"""

from __future__ import annotations

import cv2
import numpy as np

from swapface.faces.mesh import FACE_OVAL, LEFT_EYE_OUTLINE, LEFT_IRIS, LIPS_INNER, RIGHT_EYE_OUTLINE, RIGHT_IRIS
from swapface.faces.template import BROWS, JAW, LEFT_EYE, MOUTH, NOSE, RIGHT_EYE

FOREHEAD_LIFT = 0.25  # brows are raised by this fraction of the brow-to-chin height


def face_outline(landmarks: np.ndarray, forehead: bool = True) -> np.ndarray:
    """Closed outline of the face (jaw + brows, optionally lifted to cover the forehead)."""
    jaw = landmarks[JAW]
    brows = landmarks[BROWS][::-1].copy()
    if forehead:
        chin = landmarks[8]
        brow_centre = brows.mean(0)
        up = brow_centre - chin
        brows = brows + up * FOREHEAD_LIFT
    return np.concatenate([jaw, brows]).astype(np.float32)


def hull_mask(landmarks: np.ndarray, shape: tuple[int, int], forehead: bool = True) -> np.ndarray:
    """Float32 mask in [0, 1] of size `shape` (H, W): 1 inside the convex hull of the face outline."""
    mask = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(face_outline(landmarks, forehead))
    # Sub-pixel fill: draw at 4x precision with cv2's fixed-point shift.
    cv2.fillConvexPoly(mask, np.round(hull * 16).astype(np.int32), 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


def feature_priority(landmarks: np.ndarray, shape: tuple[int, int], nose: float = 0.25) -> np.ndarray:
    """Per-pixel share of the training loss's priority weight, in [0, 1]: 1 on the eyes and the mouth (where
    identity and expression live), `nose` on the nose, 0 elsewhere; softened so it has no hard edge. Kept
    apart from the weight itself, so the weight can change without re-reading the faceset."""
    priority = np.zeros(shape, np.float32)
    size = max(shape)
    for region, share, grow in ((LEFT_EYE, 1.0, 0.04), (RIGHT_EYE, 1.0, 0.04), (MOUTH, 1.0, 0.03),
                                (NOSE, nose, 0.02)):
        region_mask = np.zeros(shape, np.uint8)
        hull = cv2.convexHull(landmarks[region].astype(np.float32)).astype(np.int32)
        cv2.fillConvexPoly(region_mask, hull, 1)
        radius = max(1, int(size * grow))
        region_mask = cv2.dilate(region_mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                                         (2 * radius + 1, 2 * radius + 1)))
        priority = np.maximum(priority, region_mask.astype(np.float32) * share)
    blur = max(3, int(size * 0.03) | 1)
    return cv2.GaussianBlur(priority, (blur, blur), 0)


def _fill(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(points) * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


def dense_face_mask(dense: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Float32 mask of the face inside the 478-point mesh's oval: it follows the real jaw line and
    stops at the hairline, where the 68-point hull has to guess the forehead."""
    return _fill(dense[FACE_OVAL], shape)


def dense_regions(dense: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Float32 masks of the mouth interior (inside the inner lip line: teeth, tongue, dark gap), each
    eye (inside the lids) and each iris, from the 478 points; for losses and metrics that look at
    expression and gaze."""
    regions = {"mouth": _fill(dense[LIPS_INNER], shape), "left_eye": _fill(dense[LEFT_EYE_OUTLINE], shape),
               "right_eye": _fill(dense[RIGHT_EYE_OUTLINE], shape)}
    for name, iris in (("left_iris", LEFT_IRIS), ("right_iris", RIGHT_IRIS)):
        centre, rim = dense[iris[0]], dense[iris[1:]]
        radius = float(np.linalg.norm(rim - centre, axis=1).mean())
        mask = np.zeros(shape, np.uint8)
        cv2.circle(mask, tuple(np.round(centre * 16).astype(int)), int(round(radius * 16)), 255, -1, cv2.LINE_AA, 4)
        eye = regions["left_eye" if name == "left_iris" else "right_eye"]
        regions[name] = np.minimum(mask.astype(np.float32) / 255.0, eye)  # the lids hide the iris' rim
    return regions
