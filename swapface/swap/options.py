"""How to swap: `SwapOptions`, and the checks every caller gets.

A module of its own (no torch, no model code) so that the web API's job options (`swapface.jobs.options`)
take their defaults from here, the one source, without loading the whole stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from swapface.errors import SwapfaceError
from swapface.media.writer import VideoSettings
from swapface.provenance.watermark import DEFAULT_KEY as WATERMARK_KEY
from swapface.swap.blend import BLEND_MODES
from swapface.swap.color import COLOR_MODES
from swapface.swap.masks import MASK_MODES

DIRECTIONS = {"a2b": "b", "b2a": "a"}  # input shows A -> render with B's decoder, and back
PRECISIONS = ("auto", "bf16", "fp32")  # auto: bf16 where the hardware has it


@dataclass(frozen=True)
class SwapOptions:
    """How to swap; the defaults suit most footage."""

    direction: str = "a2b"
    reference: np.ndarray | None = None  # identity embedding of the only person to swap
    max_distance: float = 0.6
    color: str = "reinhard"
    mask: str = "all"  # learned + hull + occlusion: measured best (docs/benchmarks.md, "Occlusion mask")
    erode: float = 4.0  # px of a face 256 px across (scales with the face)
    blur: float = 12.0
    blend: str = "laplacian"
    sharpen: float = 0.0  # unsharp mask on the generated face (0 off; 0.5-1 for soft models)
    smooth: float = 1.0
    backend: str | None = None  # None: the backend that made the model's facesets (see modeldir.face_backend)
    detector: str | None = None  # None: the backend's default
    min_face: int | None = None  # None: a tenth of the frame's short side, at least 80 px
    detect_every: int = 5
    detect_workers: int | None = None  # threads detecting keyframes ahead (None: cores - 1, up to 4; 0: inline)
    batch_size: int = 8
    device: str = "cpu"
    precision: str = "auto"  # PRECISIONS; auto: bf16 where the hardware has it (CUDA; CPUs with AMX/avx512-bf16)
    start: float = 0.0
    end: float | None = None
    video: VideoSettings = field(default_factory=VideoSettings)
    colorspace: str | None = None  # OCIO colour space of an image sequence's pixels (None: from the file)
    patches: Path | None = None
    queue_frames: int = 8
    blend_workers: int | None = None  # threads compositing faces (None: one per core but one, up to 8)
    allow_no_faces: bool = False  # write footage where no face was swapped (else that is an error)
    watermark: str | None = WATERMARK_KEY  # key of the invisible mark put on every swapped face (None: off)
    credentials: bool = True  # sign the output with Content Credentials (C2PA)
    sign_cert: Path | None = None  # the signer's PEM chain and key (None: env vars, else the local identity)
    sign_key: Path | None = None

    def __post_init__(self) -> None:
        choices = (("direction", self.direction, tuple(DIRECTIONS)), ("color", self.color, COLOR_MODES),
                   ("mask", self.mask, MASK_MODES), ("blend", self.blend, BLEND_MODES),
                   ("precision", self.precision, PRECISIONS))
        for name, value, allowed in choices:
            if value not in allowed:
                raise SwapfaceError(f"--{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.end is not None and self.end <= self.start:
            raise SwapfaceError(f"--end ({self.end}) must be after --start ({self.start})")
        if self.start < 0:
            raise SwapfaceError("--start must not be negative")
        if self.sharpen < 0:
            raise SwapfaceError(f"--sharpen must not be negative, got {self.sharpen}")
