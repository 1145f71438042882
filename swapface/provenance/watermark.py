"""An invisible watermark bound to the face's geometry: embedded by the swap, found again after
re-encoding, scaling, cropping and brightness changes.

Why our own: the packaged watermarkers (invisible-watermark's DWT-DCT) lose the mark at the first
resize, and learned ones (Video Seal) have no installable weights here. The design (docs/provenance.md):

- The mark lives in a canonical face canvas (`CANVAS`: 128 px, "head" coverage, the same similarity
  alignment of the 68 landmarks that extraction and swapping use), so any crop, scale or move of the
  frame is undone by re-detecting the face and aligning it again: nothing has to be searched for.
- In that canvas the mark is a keyed +-1 chip on each of ~1200 low/mid DCT coefficients of the luma
  (periods of 4 to 32 canvas px: fine enough to be many, coarse enough to survive 480p and CRF 28),
  tapered by a soft elliptical window over the face and around it, and added to R, G and B alike
  (luma only; colours do not shift) with an amplitude that follows the local texture, so flat skin and
  backgrounds get little; the occluders the swap keeps in front of the face get none (`KeptPixels`).
- Detection warps the luma of each sampled frame's faces into the canvas, takes the same coefficients,
  whitens them per frequency ring, sums them over frames and correlates with the chips. Under "no
  mark" the chips are independent of the footage, so the correlation is a Rademacher sum with the
  footage's own weights: Hoeffding bounds P(z >= t) <= exp(-t^2 / 2) whatever the content. The
  threshold `Z_THRESHOLD` = 5.3 sets the false-positive rate below 1e-6 per clip by design.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import cv2
import numpy as np

from swapface.faces import DEFAULT_BACKEND, AlignSpec, FaceBackend, alignment_matrix, crop_face
from swapface.faces.align import crop_window, is_face_shaped, uncrop

CANVAS = AlignSpec(128, "head")
# The landmarks the mark is aligned on, when it is put in and when it is read: one choice for both. The
# default backend's (MediaPipe, Apache-2.0), not dlib's 68-point model, whose training data excludes
# commercial use. Marks that older versions put in on dlib's landmarks read weaker with these.
MARK_BACKEND = DEFAULT_BACKEND
DEFAULT_KEY = "swapface"  # public: anyone can check a swapface output; organisations may use their own
BAND = (6.0, 64.0)  # radial DCT index range of the marked coefficients (periods 43..4 canvas px)
STRENGTH = 2.0  # luma levels (of 255): the mark's first try, RMS inside the window on textured skin
MIN_STRENGTH = 1.0
TARGET_Z = 12.0  # what one clean frame should score; re-encoding and scaling lose part of it
MIN_PSNR = 42.5  # the frame's PSNR against the unmarked swap never falls below this (the bar is 42 dB)
Z_THRESHOLD = math.sqrt(2 * math.log(1e6))  # 5.26: Hoeffding gives P(false positive) <= 1e-6 per clip
RING_WIDTH = 4.0  # DCT index width of the rings whitened together
CLIP = 3.0  # whitened coefficients are clipped here so a few strong edges do not drown the sum


def false_positive_bound(z: float) -> float:
    """Upper bound on the chance that unmarked footage scores `z` or more (Hoeffding)."""
    return float(math.exp(-max(z, 0.0) ** 2 / 2))


@lru_cache(maxsize=1)
def _band() -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the marked DCT coefficients and the ring each belongs to."""
    n = CANVAS.size
    v, u = np.mgrid[0:n, 0:n]
    radius = np.hypot(u, v)
    inside = (radius >= BAND[0]) & (radius <= BAND[1])
    index = np.flatnonzero(inside)
    rings = np.floor((radius.ravel()[index] - BAND[0]) / RING_WIDTH).astype(int)
    return index, rings


@lru_cache(maxsize=1)
def window() -> np.ndarray:
    """Soft ellipse over the face and around it in the canvas: 1 in the middle, 0 at the edges."""
    n = CANVAS.size
    y, x = (np.mgrid[0:n, 0:n] + 0.5) / n
    r = np.hypot((x - 0.5) / 0.42, (y - 0.55) / 0.45)
    return (0.5 + 0.5 * np.cos(np.pi * np.clip((r - 0.6) / 0.4, 0.0, 1.0))).astype(np.float32)


@lru_cache(maxsize=8)
def chips(key: str = DEFAULT_KEY) -> np.ndarray:
    """The key's +-1 chip per marked coefficient (a seeded generator: independent of any footage)."""
    seed = int.from_bytes(hashlib.sha256(f"swapface-watermark:{key}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed).choice(np.array([-1.0, 1.0], np.float32), size=len(_band()[0]))


@lru_cache(maxsize=8)
def pattern(key: str = DEFAULT_KEY) -> np.ndarray:
    """The canvas-space mark: chips in the DCT band, back in pixels, windowed, RMS 1 inside the window."""
    n = CANVAS.size
    spectrum = np.zeros(n * n, np.float32)
    spectrum[_band()[0]] = chips(key)
    spatial = cv2.idct(spectrum.reshape(n, n)) * window()
    inside = window() > 0.5
    return (spatial / np.sqrt(np.mean(spatial[inside] ** 2))).astype(np.float32)


def _luma(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _texture(luma: np.ndarray, scale: float) -> np.ndarray:
    """Local contrast in [0.35, 1.5]: the mark hides in texture and stays faint on flat areas."""
    size = max(3, int(round(3 / max(scale, 1e-3))) | 1)  # ~3 canvas px, in frame px
    f = luma.astype(np.float32)
    mean = cv2.blur(f, (size, size))
    std = np.sqrt(np.maximum(cv2.blur(f * f, (size, size)) - mean * mean, 0.0))
    std = cv2.blur(std, (2 * size + 1, 2 * size + 1))
    return np.clip(std / 4.0, 0.35, 1.5)


class KeptPixels(NamedTuple):
    """Pixels the mark leaves exactly as they are: the occluders a swap kept in front of the face (a float
    mask in [0, 1] in the swap's face crop, and that crop's frame -> crop matrix). The paste promises to
    leave them alone; a mark that follows texture would otherwise change a textured object the most."""

    mask: np.ndarray
    matrix: np.ndarray


def _mark(image: np.ndarray, matrix: np.ndarray, key: str,
          kept: KeptPixels | None = None) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """The frame region the canvas covers and the mark there at unit strength (texture-shaped), none on
    the `kept` pixels."""
    region = x0, y0, x1, y1 = crop_window(matrix, CANVAS.size, image.shape, pad=0)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    box = (slice(y0, y1), slice(x0, x1))
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    mark = uncrop(pattern(key), matrix, region, border=cv2.BORDER_CONSTANT) * _texture(_luma(image[box]), scale)
    if kept is not None:
        kept_there = uncrop(kept.mask.astype(np.float32), kept.matrix, region, border=cv2.BORDER_CONSTANT)
        mark *= 1.0 - np.clip(kept_there, 0.0, 1.0)
    return box, mark


def _frame_z(image: np.ndarray, matrix: np.ndarray, key: str) -> float:
    values = _canvas_values(image, matrix)
    weights = np.clip(values, -CLIP, CLIP)
    return float(weights @ chips(key) / max(np.sqrt(weights @ weights), 1e-9))


def embed(image: np.ndarray, landmarks: np.ndarray, key: str = DEFAULT_KEY, target_z: float = TARGET_Z,
          min_psnr: float = MIN_PSNR, kept: KeptPixels | None = None) -> float:
    """Add the mark (in place, RGB uint8) to the face at `landmarks` and around it, except on the `kept`
    pixels; returns its strength.

    Informed embedding: the frame's own correlation with the key (the host's, before marking) is
    measured, and the strength is chosen so that this frame alone scores `target_z`: footage that
    happens to correlate negatively gets more, positively less. The strength stays within
    [`MIN_STRENGTH`, the level where the whole frame's PSNR would fall to `min_psnr`].
    """
    matrix = alignment_matrix(landmarks, CANVAS)
    found = _mark(image, matrix, key, kept)
    if found is None:
        return 0.0
    box, unit = found
    region = image[box]
    original = region.copy()
    budget = math.sqrt(image.shape[0] * image.shape[1] * 255.0**2 / 10 ** (min_psnr / 10) / max(float(
        np.sum(unit * unit)) * 3 / image.shape[2], 1e-9))
    host = _frame_z(image, matrix, key)
    probe = min(STRENGTH, budget)
    _add(region, original, unit * probe)
    gain = (_frame_z(image, matrix, key) - host) / probe
    strength = probe if gain <= 0 else float(np.clip((target_z - host) / gain, MIN_STRENGTH, budget))
    _add(region, original, unit * strength)
    return strength


REFIT_ROUNDS = 5


def settled_landmarks(landmarks: Callable[[np.ndarray, np.ndarray], np.ndarray], image: np.ndarray,
                      bbox: np.ndarray) -> np.ndarray:
    """Landmarks that do not depend on the box the search started from: fit, put a square box on the
    landmarks' centre and size, fit again. The swap (the tracker's box) and the detector (a HOG box at
    another scale) start from different boxes; on a soft generated face one fit from each lands up to
    10 px apart, enough to blur the mark's fine half. After a few rounds both sit within about a canvas
    pixel of the same fixed point (the landmarks' own min/max box does not settle: it drifts)."""
    points = landmarks(image, bbox)
    for _ in range(REFIT_ROUNDS - 1):
        centre, side = points.mean(0), float((points.max(0) - points.min(0)).max())
        points = landmarks(image, np.concatenate([centre - side / 2, centre + side / 2]))
    return points


class Watermarker:
    """The swap's hook: marks a composited face, aligned on the landmarks of the face as it now looks
    (fitted again in its box), which are what a detector will find; the source face's landmarks can
    be pixels off from the generated face's, and that would blur the mark's fine half."""

    def __init__(self, key: str = DEFAULT_KEY, backend: str = MARK_BACKEND) -> None:
        from swapface.faces import make_backend

        self.key = key
        self._landmarks = make_backend(backend).landmarks

    def __call__(self, image: np.ndarray, bbox: np.ndarray, kept: KeptPixels | None = None) -> None:
        mark_face(image, self._landmarks, bbox, self.key, kept)


def mark_face(image: np.ndarray, landmarks: Callable[[np.ndarray, np.ndarray], np.ndarray], bbox: np.ndarray,
              key: str = DEFAULT_KEY, kept: KeptPixels | None = None) -> None:
    """Embed on settled landmarks; then, since the mark itself nudges a soft face's landmarks, settle
    them again on the marked face and, if they moved, mark the unmarked face on those instead."""
    points = settled_landmarks(landmarks, image, bbox)
    unmarked = image.copy()
    embed(image, points, key, kept=kept)
    moved = settled_landmarks(landmarks, image, np.concatenate([points.min(0), points.max(0)]))
    if np.abs(moved - points).mean() > 1.0:
        image[:] = unmarked
        embed(image, (points + moved) / 2, key, kept=kept)


def _add(region: np.ndarray, original: np.ndarray, delta: np.ndarray) -> None:
    """region = original + delta on every channel, rounded and saturated in one OpenCV pass."""
    cv2.add(original, cv2.cvtColor(delta.astype(np.float32), cv2.COLOR_GRAY2RGB), dst=region, dtype=cv2.CV_8U)


def _canvas_values(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    canvas = _luma(crop_face(image, matrix, CANVAS.size))
    spectrum = cv2.dct(canvas.astype(np.float32) * window()).ravel()
    index, rings = _band()
    return _whiten(spectrum[index], rings)


def canvas_coefficients(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The marked DCT coefficients of the face's luma canvas, whitened per frequency ring."""
    return _canvas_values(image, alignment_matrix(landmarks, CANVAS))


def _whiten(values: np.ndarray, rings: np.ndarray) -> np.ndarray:
    """Divide each ring by its robust scale (median absolute value), so every frequency weighs alike."""
    out = np.empty_like(values)
    for ring in np.unique(rings):
        sel = rings == ring
        out[sel] = values[sel] / max(float(np.median(np.abs(values[sel]))) / 0.6745, 1e-6)
    return out


@dataclass
class WatermarkScore:
    """Pooled evidence over a clip's sampled faces."""

    z: float
    faces: int
    frames: int

    @property
    def found(self) -> bool:
        return self.z >= Z_THRESHOLD

    @property
    def p_value(self) -> float:
        return false_positive_bound(self.z)


class WatermarkDetector:
    """Sums the whitened canvas coefficients of every face it is shown, then scores them against a key."""

    def __init__(self) -> None:
        self.total = np.zeros(len(_band()[0]), np.float64)
        self.faces = 0
        self.frames = 0

    def add_frame(self, image: np.ndarray, backend: FaceBackend, detect_scale: float = 1.0) -> None:
        """Find the faces (boxes on a copy resized by `detect_scale`, landmarks at full size) and pool them.
        Keep the backend's own score floor: every box adds its canvas to the sum, so background boxes
        and duplicates of one face dilute the mark."""
        small = image if detect_scale == 1.0 else cv2.resize(image, None, fx=detect_scale, fy=detect_scale,
                                                                 interpolation=cv2.INTER_AREA)
        self.frames += 1
        for box, _ in backend.boxes(small):
            landmarks = settled_landmarks(backend.landmarks, image, box / detect_scale)
            if not is_face_shaped(landmarks):
                continue
            self.total += canvas_coefficients(image, landmarks)
            self.faces += 1

    def score(self, key: str = DEFAULT_KEY) -> WatermarkScore:
        if self.faces == 0:
            return WatermarkScore(0.0, 0, self.frames)
        index, rings = _band()
        pooled = np.clip(_whiten(self.total, rings), -CLIP, CLIP)
        z = float(pooled @ chips(key) / max(np.sqrt(pooled @ pooled), 1e-9))
        return WatermarkScore(z, self.faces, self.frames)
