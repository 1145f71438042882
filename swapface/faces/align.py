"""Similarity alignment of faces onto the canonical template, and the warps in and out of a crop.

The forward matrix (2x3, source pixels -> crop pixels) is stored with every face so that a later stage
can warp a generated face back into the frame exactly, with the inverse of the same transform.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from swapface.faces.template import INNER_FACE, LEFT_EYE, MEAN_FACE_68, RIGHT_EYE

# How much of the crop the landmark box takes, and how far it sits below the centre (fractions of the
# crop). "whole" leaves room for the forehead; "head" for hair and ears.
COVERAGES: dict[str, tuple[float, float]] = {
    "tight": (0.80, 0.03),
    "whole": (0.62, 0.10),
    "head": (0.46, 0.10),
}
MIN_SIZE, MAX_SIZE = 64, 1024


@dataclass(frozen=True)
class AlignSpec:
    """Crop geometry shared by extraction, training and swapping."""

    size: int = 256
    coverage: str = "whole"

    def __post_init__(self) -> None:
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise ValueError(f"crop size must be {MIN_SIZE}-{MAX_SIZE} px, got {self.size}")
        if self.coverage not in COVERAGES:
            raise ValueError(f"coverage must be one of {', '.join(COVERAGES)}, got {self.coverage!r}")

    def template(self) -> np.ndarray:
        """The 68 template points in this crop's pixel coordinates."""
        fraction, shift = COVERAGES[self.coverage]
        unit = (MEAN_FACE_68 - 0.5) * fraction + 0.5 + np.array([0.0, shift])
        return unit * self.size


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) taking src to dst.

    Umeyama (1991); returns a 2x3 matrix.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_src, mu_dst = src.mean(0), dst.mean(0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    cov = dst_c.T @ src_c / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rotation = u @ np.diag(d) @ vt
    var_src = (src_c**2).sum() / len(src)
    scale = float((sigma * d).sum() / var_src) if var_src > 0 else 1.0
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_dst - scale * rotation @ mu_src
    return matrix


def alignment_matrix(landmarks: np.ndarray, spec: AlignSpec) -> np.ndarray:
    """Matrix taking source-image pixels to crop pixels, fitted on the inner-face landmarks."""
    return umeyama(landmarks[INNER_FACE], spec.template()[INNER_FACE])


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to an (N, 2) array of points."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix."""
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def crop_face(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp the face out of `image` into a size x size crop (area-like filtering when shrinking)."""
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    if scale < 0.5:
        # warpAffine has no true area filter: pre-shrink so the warp samples at roughly 1:1.
        factor = scale * 1.5
        small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        adjust = np.array([[1 / factor, 0, 0], [0, 1 / factor, 0], [0, 0, 1]])
        matrix = np.vstack([matrix, [0, 0, 1]]) @ adjust
        matrix = matrix[:2]
        image = small
        interpolation = cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix, (size, size), flags=interpolation, borderMode=cv2.BORDER_REFLECT)


def fit_error(landmarks: np.ndarray, spec: AlignSpec | None = None) -> float:
    """RMS distance of aligned inner landmarks from the template, as a fraction of the crop size.

    Real faces fit the template closely (about 0.01-0.04); a false detection gives scattered
    landmarks and a large error.
    """
    spec = spec or AlignSpec(256, "tight")
    matrix = alignment_matrix(landmarks, spec)
    aligned = transform_points(landmarks[INNER_FACE], matrix)
    residual = aligned - spec.template()[INNER_FACE]
    return float(np.sqrt((residual**2).sum(1).mean()) / spec.size)


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the two eyes (image-left first) from 68 landmarks."""
    return points[LEFT_EYE].mean(0), points[RIGHT_EYE].mean(0)
