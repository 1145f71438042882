"""Image files in RGB: the one place that converts between OpenCV's BGR and our RGB arrays."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from swapface.atomic import atomic_path
from swapface.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as HxWx3 uint8 RGB, honouring EXIF orientation; raise InputError if unreadable."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(path, "not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_rgb(path: str | Path, image: np.ndarray) -> None:
    """Write an RGB (or single-channel) image atomically; PNG is lossless."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), bgr):
            raise InputError(path, "could not write image")
