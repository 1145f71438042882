"""Footage deeper than 8 bits (or with alpha) through a swap that works on 8-bit RGB.

The reader keeps a frame's original pixels (`Frame.original`: 10/16-bit, half or full float, with alpha)
next to the 8-bit display RGB the swap sees (`Frame.image`) and a copy of that as read (`Frame.untouched`).
The writer puts back the original pixel wherever the swap left the 8-bit value as it was, and converts
only the pixels the swap changed back to the footage's depth and space: untouched pixels, and alpha,
come out bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class PixelSpace(Protocol):
    """How a frame's original RGB relates to display-referred RGB in [0, 1] (what the swap sees)."""

    name: str

    def to_display(self, pixels: np.ndarray) -> np.ndarray:
        """Original pixels (HxWxC, colour first) -> HxWx3 float32 display RGB (not clipped)."""
        ...

    def from_display(self, rgb: np.ndarray) -> np.ndarray:
        """float32 display RGB in [0, 1] -> original RGB, in the original's dtype."""
        ...


@dataclass(frozen=True)
class IntegerSpace:
    """Display-referred integer pixels (10/12/16-bit video, DPX, TIFF, PNG): value / max_value."""

    max_value: int
    dtype: str = "uint16"
    name: str = "display-referred (as stored)"

    def to_display(self, pixels: np.ndarray) -> np.ndarray:
        return pixels[..., :3].astype(np.float32) / self.max_value

    def from_display(self, rgb: np.ndarray) -> np.ndarray:
        return np.round(np.clip(rgb, 0, 1) * self.max_value).astype(self.dtype)


def to_rgb8(original: np.ndarray, space: PixelSpace) -> np.ndarray:
    """The 8-bit display RGB the swap works on, from the original's colour channels."""
    rgb = space.to_display(original)
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def restore(original: np.ndarray, space: PixelSpace, swapped: np.ndarray, untouched: np.ndarray) -> np.ndarray:
    """The original frame (its dtype, space and channels) with only the pixels where `swapped` differs
    from `untouched` (the 8-bit picture as read) replaced."""
    out = original.copy()
    changed = np.any(swapped != untouched, axis=-1)
    if changed.any():
        out[changed, :3] = space.from_display(swapped[changed].astype(np.float32) / 255.0)
    return out


def restore_display16(original: np.ndarray, space: PixelSpace, swapped: np.ndarray,
                      untouched: np.ndarray) -> np.ndarray:
    """16-bit display RGB(A) for a video encoder: the original where the swap left it, the swap elsewhere.
    Alpha, when there is one, is carried over (scaled to 16 bits if stored as float or 8 bits)."""
    display = np.clip(space.to_display(original), 0.0, 1.0)
    rgb = np.round(display * 65535.0).astype(np.uint16)
    changed = np.any(swapped != untouched, axis=-1)
    rgb[changed] = swapped[changed].astype(np.uint16) * 257
    if original.shape[-1] < 4:
        return rgb
    alpha = original[..., 3:4]
    if np.issubdtype(alpha.dtype, np.floating):
        alpha16 = np.round(np.clip(alpha.astype(np.float32), 0, 1) * 65535.0).astype(np.uint16)
    else:
        alpha16 = (alpha.astype(np.uint32) * 65535 // np.iinfo(alpha.dtype).max).astype(np.uint16)
    return np.concatenate([rgb, alpha16], axis=-1)
