"""Image files in RGB: the one place that reads and writes stills, and converts between OpenCV's BGR and our
RGB arrays."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from swapface.atomic import atomic_path
from swapface.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as HxWx3 uint8 RGB, honouring EXIF orientation; raise InputError if unreadable.

    Decoded by Pillow rather than OpenCV: OpenCV's decoders (libjpeg, libpng, libtiff) print their complaints
    about a damaged file straight to stderr from C, so a corrupt JPEG gave the user two lines instead of our
    one; Pillow turns them into exceptions."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    with open(path, "rb") as handle:  # outside the try: no permission and the like stay the system's words
        try:
            with Image.open(handle) as image:
                ImageOps.exif_transpose(image, in_place=True)
                return _rgb8(image, path)
        except Image.DecompressionBombError:
            raise InputError(path, "image too large to read safely") from None
        except (OSError, ValueError, SyntaxError):  # Pillow's errors for files it cannot identify or decode
            raise InputError(path, "not a readable image") from None


def _rgb8(image: Image.Image, path: Path) -> np.ndarray:
    """8-bit RGB as OpenCV's IMREAD_COLOR gives it: alpha dropped, grey spread over three channels, 16-bit
    samples cut to their top 8 bits."""
    if image.mode.startswith("I"):  # 16-bit (or 32-bit integer) grey
        grey = (np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "F":
        raise InputError(path, "float pixels: read such frames as an image sequence (OpenImageIO)")
    return np.array(image if image.mode == "RGB" else image.convert("RGB"))


def write_rgb(path: str | Path, image: np.ndarray) -> None:
    """Write an RGB (or single-channel) image atomically; PNG is lossless."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), bgr):
            raise InputError(path, "could not write image")
