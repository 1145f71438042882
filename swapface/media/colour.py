"""Colour management with OpenColorIO: footage in its own space, face work in display-referred sRGB.

The model and colour matching were trained on display-referred 8-bit RGB; scene-linear (EXR, ACEScg)
or log footage is converted into that working space for the swap and the swapped pixels are converted
back, so the output is written in the input's space. The config is the one `$OCIO` names, else OCIO's
built-in ACES config (`ocio://default`, nothing on disk or downloaded).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np
import PyOpenColorIO as ocio

from swapface.errors import SwapfaceError

WORKING_ROLE = "color_picking"  # the built-in config's display-referred sRGB ("sRGB Encoded Rec.709 (sRGB)")
LINEAR_ROLE = "scene_linear"  # what "linear" means for an EXR that names no space (ACEScg in the built-in config)


@functools.cache
def config() -> ocio.Config:
    """The OCIO config: `$OCIO` where set, else the built-in ACES config."""
    path = os.environ.get("OCIO")
    try:
        return ocio.Config.CreateFromFile(path) if path else ocio.Config.CreateFromFile("ocio://default")
    except ocio.Exception as exc:
        raise SwapfaceError(f"OCIO config {path or 'ocio://default'} cannot be read ({exc})") from None


def config_name() -> str:
    return os.environ.get("OCIO") or "ocio://default (built-in ACES config)"


def resolve(name: str) -> str:
    """A colour space or role name of the config, as the config spells it; one line if unknown."""
    cfg = config()
    space = cfg.getColorSpace(name)
    if space is None:
        known = ", ".join(cs.getName() for cs in list(cfg.getColorSpaces())[:12])
        raise SwapfaceError(f"colour space {name!r} is not in the OCIO config {config_name()} (it has {known}, ...)")
    return space.getName()


def working_space() -> str:
    return resolve(WORKING_ROLE) if config().hasRole(WORKING_ROLE) else resolve("sRGB Encoded Rec.709 (sRGB)")


_BIT_DEPTHS = {"float16": ocio.BIT_DEPTH_F16, "float32": ocio.BIT_DEPTH_F32, "uint16": ocio.BIT_DEPTH_UINT16,
               "uint8": ocio.BIT_DEPTH_UINT8}


def _cpu(processor: ocio.Processor, depth: str = "float32") -> ocio.CPUProcessor:
    """OCIO's default optimisation (fast approximations within its accuracy bounds): 2x faster than the
    lossless level on a 4K frame; untouched pixels never go through it (they are kept as stored)."""
    return processor.getOptimizedCPUProcessor(_BIT_DEPTHS[depth], ocio.BIT_DEPTH_F32, ocio.OPTIMIZATION_DEFAULT)


def _apply(processor: ocio.CPUProcessor, pixels: np.ndarray) -> np.ndarray:
    """HxWxC pixels (C >= 3, any type OCIO reads) -> HxWx3 float32. OCIO reads half floats and integers
    itself (integers scaled to 0..1): 4x faster than converting a 4K half-float frame with numpy first."""
    channels = 4 if pixels.shape[-1] >= 4 else 3
    source = np.ascontiguousarray(pixels[..., :channels])
    height, width = source.shape[:2]
    out = np.empty((height, width, channels), np.float32)
    size = source.dtype.itemsize
    processor.apply(ocio.PackedImageDesc(source, width, height, channels, _BIT_DEPTHS[source.dtype.name], size,
                                         size * channels, size * channels * width),
                    ocio.PackedImageDesc(out, width, height, channels))
    return out[..., :3]


@dataclass(frozen=True)
class OcioSpace:
    """Pixels in an OCIO colour space (`scale`: the integer type's largest value, 1 for float)."""

    source: str
    dtype: str
    scale: float = 1.0

    @property
    def name(self) -> str:
        return self.source

    @functools.cached_property
    def _forward(self) -> ocio.CPUProcessor:
        return _cpu(config().getProcessor(self.source, working_space()), self.dtype)

    @functools.cached_property
    def _inverse(self) -> ocio.CPUProcessor:
        return _cpu(config().getProcessor(working_space(), self.source))

    def to_display(self, pixels: np.ndarray) -> np.ndarray:
        return _apply(self._forward, pixels)

    def from_display(self, rgb: np.ndarray) -> np.ndarray:
        flat = np.ascontiguousarray(rgb, dtype=np.float32).reshape(1, -1, 3)
        values = _apply(self._inverse, flat).reshape(rgb.shape) * self.scale
        if np.issubdtype(np.dtype(self.dtype), np.integer):
            return np.round(np.clip(values, 0, self.scale)).astype(self.dtype)
        return values.astype(self.dtype)


def default_space(is_float: bool, file_space: str | None) -> str | None:
    """The input's colour space when the user names none: what the file says, else scene-linear for
    float files (EXR), else None (integer files are taken as display-referred, as stored)."""
    if file_space:
        try:
            return resolve(file_space)
        except SwapfaceError:
            pass  # a name this config does not know: fall back as if the file said nothing
    return resolve(LINEAR_ROLE) if is_float else None
