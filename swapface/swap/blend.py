"""Put a generated face back into the full-resolution frame: inverse warp, then a seamless blend.

The face crop and its mask are warped back with the exact inverse of the alignment transform (one
`warpAffine` with WARP_INVERSE_MAP on the forward matrix: sub-pixel, no rounding of positions), and
only over the frame region the mask covers, padded for the blend, so the cost follows the face's
size and not the frame's (1080p and 4K alike).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from swapface.faces.align import uncrop

BLEND_MODES = ("laplacian", "poisson", "feather")
MASK_FLOOR = 1.0 / 512  # mask values below this count as outside the face
MAX_LEVELS = 5


def region_of(mask: np.ndarray, matrix: np.ndarray, frame_shape: tuple[int, ...],
              pad: int) -> tuple[int, int, int, int] | None:
    """Frame box (x0, y0, x1, y1) covering the mask's support, padded by `pad` px and clipped."""
    ys, xs = np.nonzero(mask > MASK_FLOOR)
    if xs.size == 0:
        return None
    corners = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.min()], [xs.min(), ys.max() + 1],
                        [xs.max() + 1, ys.max() + 1]], np.float64)
    inverse = cv2.invertAffineTransform(np.asarray(matrix, np.float64))
    points = corners @ inverse[:, :2].T + inverse[:, 2]
    h, w = frame_shape[:2]
    x0, y0 = np.floor(points.min(0)).astype(int) - pad
    x1, y1 = np.ceil(points.max(0)).astype(int) + pad
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def pyramid_levels(height: int, width: int) -> int:
    return max(1, min(MAX_LEVELS, int(math.log2(max(min(height, width), 2))) - 3))


def paste_face(frame: np.ndarray, face: np.ndarray, mask: np.ndarray, matrix: np.ndarray,
               mode: str = "laplacian", keep: np.ndarray | None = None) -> tuple[int, int, int, int] | None:
    """Blend `face` (RGB uint8 crop) into `frame` (in place) where `mask` (float crop) is on, leaving
    the frame as it was where `keep` (float crop, optional: occluders in front of the face) is on.

    Returns the frame region that was touched (None when the mask is empty or off-frame); pixels
    outside it are left exactly as they were.
    """
    if mode not in BLEND_MODES:
        raise ValueError(f"blend must be one of {', '.join(BLEND_MODES)}, got {mode!r}")
    scale = math.sqrt(abs(np.linalg.det(np.asarray(matrix)[:, :2])))  # crop px per frame px
    support_px = mask.shape[0] / max(scale, 1e-6)
    pad = 2 ** pyramid_levels(int(support_px), int(support_px)) if mode == "laplacian" else 4
    region = region_of(mask, matrix, frame.shape, pad)
    if region is None:
        return None
    x0, y0, x1, y1 = region
    background = frame[y0:y1, x0:x1]
    # Upscaling (the usual case: a 128-256 px model on a larger face) wants cubic; shrinking, linear.
    foreground = uncrop(face, matrix, region, cv2.INTER_CUBIC if scale < 1.0 else cv2.INTER_LINEAR)
    alpha = uncrop(mask.astype(np.float32), matrix, region)
    alpha = cv2.threshold(np.minimum(alpha, 1.0), MASK_FLOOR, 1.0, cv2.THRESH_TOZERO)[1]
    if mode == "feather":
        out = cv2.blendLinear(foreground, background, alpha, 1.0 - alpha)
    elif mode == "laplacian":
        difference = cv2.subtract(foreground, background, dtype=cv2.CV_32F)
        # Mixed-depth add with an 8-bit result rounds and saturates in one pass.
        out = cv2.add(background, laplacian_blend(difference, alpha), dtype=cv2.CV_8U)
    else:
        out = poisson_blend(foreground, background, alpha)
    if keep is not None:
        kept = uncrop(keep.astype(np.float32), matrix, region)
        out = cv2.blendLinear(background, out, kept, 1.0 - kept)
    frame[y0:y1, x0:x1] = out
    return region


def _three(alpha: np.ndarray) -> np.ndarray:
    return cv2.merge([alpha, alpha, alpha])


def laplacian_blend(difference: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Multi-band blend (Burt & Adelson 1983) of `difference` (foreground - background) into zero.

    Blending the difference is the same as blending the two images (the pyramid is linear) at half
    the cost. Fine detail switches over sharply at the mask edge, coarse colour gradually, which
    hides seams that a single feathered alpha leaves.
    """
    alpha3 = _three(alpha)
    # The model's background (outside the mask) must not leak in through the coarse levels.
    difference = cv2.multiply(difference, (alpha3 > 0).astype(np.float32))
    levels = pyramid_levels(*alpha.shape)
    g_diff, g_alpha = [difference], [alpha3]
    for _ in range(levels):
        g_diff.append(cv2.pyrDown(g_diff[-1]))
        g_alpha.append(cv2.pyrDown(g_alpha[-1]))
    out = cv2.multiply(g_diff[-1], g_alpha[-1])
    for level in range(levels - 1, -1, -1):
        size = (g_diff[level].shape[1], g_diff[level].shape[0])
        band = cv2.subtract(g_diff[level], cv2.pyrUp(g_diff[level + 1], dstsize=size))
        out = cv2.add(cv2.pyrUp(out, dstsize=size), cv2.multiply(band, g_alpha[level]))
    return out


def poisson_blend(foreground: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Gradient-domain blend (cv2.seamlessClone), then feathered with the soft mask's edge."""
    hard = (alpha > 0.5).astype(np.uint8) * 255
    hard[:1], hard[-1:], hard[:, :1], hard[:, -1:] = 0, 0, 0, 0  # seamlessClone needs a border
    ys, xs = np.nonzero(hard)
    if xs.size == 0:
        return cv2.blendLinear(foreground, background, alpha, 1.0 - alpha)
    # seamlessClone centres the mask's box on `center` using integer halves of its extent.
    center = (int(xs.min() + (xs.max() - xs.min()) // 2), int(ys.min() + (ys.max() - ys.min()) // 2))
    # seamlessClone overwrites the mask it is given (OpenCV issue 12053): pass a copy.
    cloned = cv2.seamlessClone(foreground, background, hard.copy(), center, cv2.NORMAL_CLONE)
    return cv2.blendLinear(cloned, background, alpha, 1.0 - alpha)
