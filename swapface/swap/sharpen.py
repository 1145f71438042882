"""Sharpening of the generated face before it is pasted: the merger option of DeepFaceLab and faceswap.

A decoder trained with pixel losses draws fine detail softer than the footage around it, and the paste
usually enlarges the crop too; an unsharp mask brings the face's edges (lids, lips, hair line) back to the
footage's crispness. OpenCV has the blur but no unsharp mask, hence these few lines.
"""

from __future__ import annotations

import cv2
import numpy as np

SHARPEN_RADIUS = 2.0  # Gaussian sigma, in px of a face 256 px across (see masks.crop_pixels)


def sharpen(face: np.ndarray, amount: float, sigma: float) -> np.ndarray:
    """`face` (uint8 RGB) plus `amount` times its detail finer than a Gaussian of `sigma` px."""
    if amount <= 0:
        return face
    blurred = cv2.GaussianBlur(face, (0, 0), max(sigma, 0.3))
    return cv2.addWeighted(face, 1.0 + amount, blurred, -amount, 0.0)  # saturates to 0..255
