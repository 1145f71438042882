"""MediaPipe face analysis on LiteRT: BlazeFace detection, 468-point FaceMesh + 10 iris points (478).

Why not the `mediapipe` package: its last release with the face models (0.10.21) pins numpy<2 and
protobuf<5 and pulls jax and a non-headless OpenCV that clashes with ours. The Apache-2.0 `.tflite`
models ship inside this package (`models/mediapipe`, copied from that wheel) and run on Google's LiteRT
runtime (`ai-edge-litert`), which installs cleanly beside numpy 2. What MediaPipe's graphs did around
the models (SSD anchors, box decoding, weighted NMS, rotated ROI crops) is re-done here, following the
graphs' published options, since no installable library provides it without the rest of MediaPipe.

Identity embeddings stay dlib's ResNet (delegated), so facesets compare across backends.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from swapface.faces.backend import DetectedFace
from swapface.faces.mesh import MESH_TO_68

MODELS = Path(__file__).with_name("models") / "mediapipe"
DEFAULT_MIN_SCORE = 0.5  # BlazeFace's own default threshold
NOISE_SCORE = 0.1  # anchors below this are background; a lower floor (e.g. 0) only costs time
MESH_MIN_PRESENCE = 0.5  # FaceMesh's face-presence score below which the crop holds no face
MODEL_FACE_PX = 24  # faces of about this size in the detector's 192 px input are still found reliably
TILE_OVERLAP = 0.4  # tiles overlap by this fraction, so every face up to TILE_MAX_FACE lies whole in one
TILE_MAX_FACE = 0.3  # a tile keeps faces up to this fraction of its side ...
TILE_MARGIN = 0.02  # ... lying at least this fraction of its side from its edges

EYE_CORNERS = ((33, 133), (362, 263))  # per eye, the corner on the image's left first


@cache
def _model_bytes(name: str) -> bytes:
    return (MODELS / name).read_bytes()


_QUIET = threading.Lock()


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 while LiteRT loads a model: its C++ logger prints an INFO line ("Created
    TensorFlow Lite XNNPACK delegate") that no setting turns off, and our errors must stay one line."""
    with _QUIET:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _interpreter(name: str):
    from ai_edge_litert.interpreter import Interpreter  # imported here: only this backend needs it

    with _quiet_stderr():
        interpreter = Interpreter(model_content=_model_bytes(name), num_threads=1)
        interpreter.allocate_tensors()
    return interpreter


def ssd_anchors(input_size: int, strides: list[int], per_location: int) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1], as MediaPipe's SsdAnchorsCalculator lays them out (fixed size):
    layers sharing a stride share a grid, each location repeating `per_location` anchors per layer."""
    centres = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        grid = math.ceil(input_size / strides[i])
        ys, xs = np.mgrid[0:grid, 0:grid]
        cells = np.stack([(xs.ravel() + 0.5) / grid, (ys.ravel() + 0.5) / grid], 1)
        centres.append(np.repeat(cells, (j - i) * per_location, axis=0))
        i = j
    return np.concatenate(centres)


# name -> (model file, input size, anchors); options from face_detection_{short,full}_range.pbtxt.
DETECTORS = {
    "short": ("face_detection_short_range.tflite", 128, ssd_anchors(128, [8, 16, 16, 16], 2)),
    "full": ("face_detection_full_range_sparse.tflite", 192, ssd_anchors(192, [4], 1)),
}


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, iou: float = 0.3
                 ) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's weighted non-maximum suppression: overlapping detections are averaged by score
    (steadier boxes than keeping only the best), the group keeps the best score."""
    order = np.argsort(-scores)
    out = []
    while len(order):
        best = order[0]
        x0 = np.maximum(boxes[best, 0], boxes[order, 0])
        y0 = np.maximum(boxes[best, 1], boxes[order, 1])
        x1 = np.minimum(boxes[best, 2], boxes[order, 2])
        y1 = np.minimum(boxes[best, 3], boxes[order, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        area = (boxes[order, 2] - boxes[order, 0]) * (boxes[order, 3] - boxes[order, 1])
        overlap = inter / np.maximum(area + area[0] - inter, 1e-9)
        group = order[overlap > iou]
        w = scores[group][:, None]
        out.append(((boxes[group] * w).sum(0) / w.sum(), float(scores[best]),
                    (keypoints[group] * w[:, :, None]).sum(0) / w.sum()))
        order = order[overlap <= iou]
    return out


def roi_matrix(centre: np.ndarray, size: float, angle: float, out: int) -> np.ndarray:
    """2x3 matrix taking image pixels to an out x out crop of the square of side `size` around
    `centre`, turned by `angle` (radians, the face's roll) so the face stands upright in the crop."""
    c, s = math.cos(angle), math.sin(angle)
    scale = out / size
    rotation = scale * np.array([[c, s], [-s, c]])
    return np.hstack([rotation, (out / 2 - rotation @ centre)[:, None]])


def _warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def _to_image(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    inverse = cv2.invertAffineTransform(matrix)
    return points @ inverse[:, :2].T + inverse[:, 2]


class MediaPipeBackend:
    """BlazeFace + FaceMesh (+ iris) behind the FaceBackend interface; landmarks come as the 68-point
    view (`MESH_TO_68`), the full 478 points as `DetectedFace.dense`.

    `detector`: "full" (BlazeFace short and full range: small and large faces) or "short" (short range
    only: faster, for faces filling much of the frame). With "full", frames whose smallest wanted face
    (`min_face` px) would shrink below the detector's reach are also searched in overlapping tiles.
    """

    name = "mediapipe"
    scheme = "mediapipe478"

    def __init__(self, detector: str = "full", min_face: int = 80, min_score: float = DEFAULT_MIN_SCORE) -> None:
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
        self.detector, self.min_face, self.min_score = detector, max(8, int(min_face)), max(min_score, NOISE_SCORE)
        self._nets: dict[str, object] = {}
        self._embedder = None

    def _net(self, file: str):
        if file not in self._nets:
            self._nets[file] = _interpreter(file)
        return self._nets[file]

    def _run(self, file: str, tensor: np.ndarray) -> list[np.ndarray]:
        net = self._net(file)
        net.set_tensor(net.get_input_details()[0]["index"], tensor[None].astype(np.float32))
        net.invoke()
        return [net.get_tensor(d["index"]) for d in net.get_output_details()]

    # -- detection ---------------------------------------------------------------------------------

    def _detect_square(self, image: np.ndarray, x0: int, y0: int, side: int, model: str, tile: bool = False) -> list:
        """Detections in the square window (x0, y0, side) of the image (zero-padded past its edges). In a
        tile, only faces well inside it and small for it count: a tile that cuts a large face would
        report its parts (the whole-frame pass finds the large faces)."""
        file, size, anchors = DETECTORS[model]
        matrix = np.array([[size / side, 0, -x0 * size / side], [0, size / side, -y0 * size / side]])
        interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        crop = cv2.warpAffine(image, matrix, (size, size), flags=interpolation, borderMode=cv2.BORDER_CONSTANT)
        raw, logits = self._run(file, crop.astype(np.float32) / 127.5 - 1.0)
        scores = 1 / (1 + np.exp(-np.clip(logits[0, :, 0], -80, 80)))
        hit = scores >= self.min_score
        if not hit.any():
            return []
        raw, anchor = raw[0, hit] / size, anchors[hit]
        centre = raw[:, :2] + anchor
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], 1) * side + [x0, y0, x0, y0]
        keypoints = (raw[:, 4:16].reshape(-1, 6, 2) + anchor[:, None]) * side + [x0, y0]
        found = zip(boxes, scores[hit], keypoints, strict=True)
        if tile:
            margin = side * TILE_MARGIN
            inner = np.array([x0 + margin, y0 + margin, x0 + side - margin, y0 + side - margin])
            found = [d for d in found if (d[0][2:] - d[0][:2]).max() <= side * TILE_MAX_FACE
                     and (d[0][:2] >= inner[:2]).all() and (d[0][2:] <= inner[2:]).all()]
        return list(found)

    def _windows(self, shape: tuple[int, ...]) -> list[tuple[int, int, int, str, bool]]:
        """Where to look, with which model: the whole frame (as one square) with the short-range model
        (large faces: the full-range one scores faces that fill the frame low); with "full", also the
        whole frame and, when min_face needs them, overlapping tiles with the full-range model."""
        h, w = shape[:2]
        side = max(h, w)
        windows = [(0, 0, side, "short", False)]
        if self.detector == "short":
            return windows
        windows.append((0, 0, side, "full", False))
        tile = int(self.min_face * DETECTORS["full"][1] / MODEL_FACE_PX)
        if tile < side:
            tile = max(tile, 64)
            step = int(tile * (1 - TILE_OVERLAP))
            xs = list(range(0, max(w - tile, 0) + 1, step)) + ([w - tile] if w > tile else [])
            ys = list(range(0, max(h - tile, 0) + 1, step)) + ([h - tile] if h > tile else [])
            windows += [(x, y, tile, "full", True) for y in sorted(set(ys)) for x in sorted(set(xs))]
        return windows

    def _detections(self, image: np.ndarray) -> list[tuple[np.ndarray, float, np.ndarray]]:
        found = [d for x, y, side, model, tile in self._windows(image.shape)
                 for d in self._detect_square(image, x, y, side, model, tile)]
        if not found:
            return []
        boxes, scores, keypoints = (np.array(v) for v in zip(*found, strict=True))
        return weighted_nms(boxes, scores, keypoints)

    def boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        return [(box, score) for box, score, _ in self._detections(image)]

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        faces = []
        for box, score, _ in self._detections(image):
            # The same fit as landmarks(image, box), so re-fitting a detected face gives the same points
            # (evaluation re-fits at the source's box); the refining pass turns the ROI with the face.
            dense = self.dense_landmarks(image, box)
            # Two networks agree (BlazeFace, then the mesh's face-presence score): no shape check, which
            # would reject faces looking down (the mesh's points are always face-shaped anyway).
            if dense is not None:
                faces.append(DetectedFace(box, score, dense[MESH_TO_68], dense))
        return faces

    # -- landmarks ---------------------------------------------------------------------------------

    def _mesh(self, image: np.ndarray, centre: np.ndarray, size: float, angle: float) -> tuple[np.ndarray, float]:
        """468 mesh points (image pixels) and the face-presence score, from one rotated square ROI."""
        matrix = roi_matrix(centre, size, angle, 192)
        crop = _warp(image, matrix, 192).astype(np.float32) / 255.0
        points, presence = self._run("face_landmark.tflite", crop)
        points = points.reshape(468, 3)[:, :2]
        return _to_image(points, matrix), float(1 / (1 + np.exp(-presence.ravel()[0])))

    def _mesh_refined(self, image: np.ndarray, centre: np.ndarray, size: float, angle: float,
                      irises: bool = True) -> np.ndarray | None:
        """Mesh from a rough ROI, then again from the ROI its own points give (MediaPipe's tracking
        ROI: their box, turned by the eye line, 1.5x): the second fit no longer depends on the rough
        box, which steadies the points from frame to frame. Adds the irises (unless told not to: the
        68-point view has none); None if no face."""
        mesh, presence = self._mesh(image, centre, size, angle)
        if presence < MESH_MIN_PRESENCE:
            return None
        mesh, presence = self._mesh(image, *self._roi_from_mesh(mesh))
        if presence < MESH_MIN_PRESENCE:
            return None
        return np.concatenate([mesh, self._irises(image, mesh)]) if irises else mesh

    @staticmethod
    def _roi_from_mesh(mesh: np.ndarray) -> tuple[np.ndarray, float, float]:
        eye_a, eye_b = mesh[33], mesh[263]
        angle = math.atan2(eye_b[1] - eye_a[1], eye_b[0] - eye_a[0])
        c, s = math.cos(angle), math.sin(angle)
        upright = mesh @ np.array([[c, -s], [s, c]])  # points turned by -angle
        lo, hi = upright.min(0), upright.max(0)
        centre = ((lo + hi) / 2) @ np.array([[c, s], [-s, c]])
        return centre, 1.5 * float((hi - lo).max()), angle

    def _irises(self, image: np.ndarray, mesh: np.ndarray) -> np.ndarray:
        """10 iris points (5 per eye, image-left eye first) from the iris model on each eye's crop; the
        model knows one eye, so the other eye's crop is mirrored in and its points mirrored back."""
        out = []
        for flip, (a, b) in zip((False, True), EYE_CORNERS, strict=True):
            p, q = mesh[a], mesh[b]
            angle = math.atan2(q[1] - p[1], q[0] - p[0])
            matrix = roi_matrix((p + q) / 2, 2.3 * float(np.linalg.norm(q - p)), angle, 64)
            crop = _warp(image, matrix, 64)
            if flip:
                crop = crop[:, ::-1]
            _, iris = self._run("iris_landmark.tflite", np.ascontiguousarray(crop).astype(np.float32) / 255.0)
            iris = iris.reshape(5, 3)[:, :2].astype(np.float64)
            if flip:
                iris[:, 0] = 64 - iris[:, 0]
            out.append(_to_image(iris, matrix))
        return np.concatenate(out)

    @staticmethod
    def _roi_from_box(bbox: np.ndarray) -> tuple[np.ndarray, float, float]:
        """The mesh's first ROI for a face box: its centre, 1.5x its longer side, upright."""
        bbox = np.asarray(bbox, np.float64)
        return (bbox[:2] + bbox[2:]) / 2, 1.5 * float((bbox[2:] - bbox[:2]).max()), 0.0

    def dense_landmarks(self, image: np.ndarray, bbox: np.ndarray) -> np.ndarray | None:
        """All 478 points of the face in `bbox`, or None where the mesh sees no face there."""
        return self._mesh_refined(image, *self._roi_from_box(bbox))

    def landmarks(self, image: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        roi = self._roi_from_box(bbox)
        mesh = self._mesh_refined(image, *roi, irises=False)
        if mesh is None:  # no face: the rough fit still answers, and the caller's shape check rejects it
            mesh, _ = self._mesh(image, *roi)
        return mesh[MESH_TO_68]

    # -- identity (dlib's ResNet: it compares faces across backends) -------------------------------

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.embed_many(image, [landmarks])[0]

    def embed_many(self, image: np.ndarray, landmarks: list[np.ndarray]) -> list[np.ndarray]:
        if self._embedder is None:
            from swapface.faces.dlib_backend import DlibBackend

            self._embedder = DlibBackend()
        return self._embedder.embed_many(image, landmarks)
