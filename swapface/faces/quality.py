"""Image-quality scores for aligned face crops."""

from __future__ import annotations

import cv2
import numpy as np

SHARPNESS_SIZE = 128


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian over the central face region, at a fixed 128 px scale.

    Measured at a fixed scale so scores compare across crop sizes; blurred or upscaled faces score low
    (typically < 20), crisp ones in the hundreds.
    """
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop
    gray = cv2.resize(gray, (SHARPNESS_SIZE, SHARPNESS_SIZE), interpolation=cv2.INTER_AREA)
    lo, hi = SHARPNESS_SIZE // 4, SHARPNESS_SIZE * 3 // 4
    return float(cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F)[lo:hi, lo:hi].var())
