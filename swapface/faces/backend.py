"""The face-analysis interface every stage uses, so a second backend (e.g. MediaPipe FaceMesh) can be
added without touching callers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class DetectedFace:
    """A face found in an image: box and 68 landmarks in that image's pixel coordinates, and the
    backend's own denser points where it has them (MediaPipe: 478)."""

    bbox: np.ndarray  # (4,) float: x0, y0, x1, y1
    score: float  # detector confidence (HOG margin, MMOD or BlazeFace confidence)
    landmarks: np.ndarray  # (68, 2) float, the iBUG scheme
    dense: np.ndarray | None = None  # (N, 2) float in the backend's own scheme

    @property
    def size(self) -> float:
        return landmark_size(self.landmarks)


def landmark_size(landmarks: np.ndarray) -> float:
    """Face size in pixels: the larger side of the landmark box (at least 1, safe to divide by)."""
    span = landmarks.max(0) - landmarks.min(0)
    return float(max(span.max(), 1.0))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes: how one face is matched across frames."""
    x0, y0 = np.maximum(a[:2], b[:2])
    x1, y1 = np.minimum(a[2:], b[2:])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class FaceBackend(Protocol):
    """Detection, landmarks and identity embeddings for RGB uint8 images."""

    name: str
    scheme: str  # the landmark scheme of `DetectedFace.dense` and of facesets made with it

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """All faces in the image, each with landmarks (false detections whose landmarks do not fit a
        face are dropped)."""
        ...

    def boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """The detector's raw (box, score) pairs: no landmarks, no checks (for a caller that fits and
        checks landmarks itself, e.g. at a higher resolution)."""
        ...

    def landmarks(self, image: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        """68 landmarks for a face known to lie in `bbox` (used when tracking between detections)."""
        ...

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Identity embedding (unit-comparable by Euclidean distance) of the face at `landmarks`."""
        ...

    def embed_many(self, image: np.ndarray, landmarks: list[np.ndarray]) -> list[np.ndarray]:
        """Embeddings of several faces of one image (one pass where the backend can batch)."""
        ...
