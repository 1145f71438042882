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


PRE_SHRINK_BELOW = 0.5  # crop px per source px under which the face's window is area-resized first


def crop_window(matrix: np.ndarray, size: int, shape: tuple[int, ...], pad: int) -> tuple[int, int, int, int]:
    """Source box (x0, y0, x1, y1) that a size x size crop with this matrix samples, padded, clipped."""
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    points = transform_points(corners, invert(matrix))
    h, w = shape[:2]
    x0, y0 = np.floor(points.min(0)).astype(int) - pad
    x1, y1 = np.ceil(points.max(0)).astype(int) + pad
    return max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))


def crop_face(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The size x size crop whose pixel (u, v) shows source point matrix^-1 (u, v), exactly.

    A swapped face is pasted back with the inverse of the same matrix, so a sub-pixel error here
    becomes a shift (or jitter) of the face. Only the window the crop can see is touched, so a 4K frame
    costs no more than a small one. When the crop is much smaller than the face, the window is first
    area-resized (a true low-pass filter; warpAffine alone would alias) and the resize's exact scale
    and half-pixel offset are folded into the matrix.
    """
    matrix = np.asarray(matrix, np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    pad = int(np.ceil(3 / max(scale, 1e-6))) + 2  # room for the resize and interpolation kernels
    x0, y0, x1, y1 = crop_window(matrix, size, image.shape, pad)
    if x1 - x0 < 2 or y1 - y0 < 2:  # the crop lies off the image: sample it whole (reflected)
        x0, y0, x1, y1 = 0, 0, image.shape[1], image.shape[0]
    window = image[y0:y1, x0:x1]
    m = matrix.copy()
    m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    if scale < PRE_SHRINK_BELOW:
        factor = scale * 1.5
        width, height = max(2, round(window.shape[1] * factor)), max(2, round(window.shape[0] * factor))
        small = cv2.resize(window, (width, height), interpolation=cv2.INTER_AREA)
        sx, sy = width / window.shape[1], height / window.shape[0]
        # small pixel k shows window point (k + 0.5) / s - 0.5.
        to_window = np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5], [0, 0, 1]])
        m = (np.vstack([m, [0, 0, 1]]) @ to_window)[:2]
        window, interpolation = small, cv2.INTER_LINEAR
    else:
        interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    return cv2.warpAffine(window, m, (size, size), flags=interpolation, borderMode=cv2.BORDER_REFLECT)


def uncrop(crop: np.ndarray, matrix: np.ndarray, region: tuple[int, int, int, int],
           interpolation: int = cv2.INTER_LINEAR, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Sample `crop` (in the space the forward `matrix` maps frame pixels to) at every pixel of the frame
    `region` (x0, y0, x1, y1): crop_face's inverse, for only the part of the frame the caller touches. Outside
    the crop, `border` replicates its edge (a face to blend) or gives zeros (BORDER_CONSTANT: a mark)."""
    x0, y0, x1, y1 = region
    shifted = np.asarray(matrix, np.float64).copy()
    shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], np.float64)
    return cv2.warpAffine(crop, shifted, (x1 - x0, y1 - y0), flags=interpolation | cv2.WARP_INVERSE_MAP,
                          borderMode=border, borderValue=0)


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


MAX_FIT_ERROR = 0.06  # landmarks this far from the template are not a face (false detection)


def is_face_shaped(landmarks: np.ndarray) -> bool:
    """Landmarks close enough to the mean face to be one (a false detection's fit is contorted)."""
    return fit_error(landmarks) <= MAX_FIT_ERROR
