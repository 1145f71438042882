"""Aligned face crops that cost what the face costs, not what the frame costs, with exact geometry.

The crop is later pasted back with the inverse of the same matrix, so it must sample exactly where
the matrix says: a sub-pixel error here becomes a shift of the swapped face (and jitter, when it
varies from frame to frame). When the crop is much smaller than the face, the face's window is first
area-resized (a true low-pass filter; warpAffine alone would alias) and the resize's exact scale and
half-pixel offset are folded into the matrix. Only the window the crop can see is touched, so a 4K
frame costs no more than a 512 px one.
"""

from __future__ import annotations

import cv2
import numpy as np

PRE_SHRINK_BELOW = 0.5  # crop px per source px under which the window is area-resized first


def crop_window(matrix: np.ndarray, size: int, shape: tuple[int, ...], pad: int) -> tuple[int, int, int, int]:
    """Source box (x0, y0, x1, y1) that a size x size crop with this matrix samples, padded, clipped."""
    inverse = cv2.invertAffineTransform(np.asarray(matrix, np.float64))
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    points = corners @ inverse[:, :2].T + inverse[:, 2]
    h, w = shape[:2]
    x0, y0 = np.floor(points.min(0)).astype(int) - pad
    x1, y1 = np.ceil(points.max(0)).astype(int) + pad
    return max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))


def crop_face_window(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The size x size crop whose pixel (u, v) shows source point matrix^-1 (u, v)."""
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
