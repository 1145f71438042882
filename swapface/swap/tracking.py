"""Follow faces through a video: detect now and then, track in between, smooth the landmarks.

Full-frame detection is the costly step at 1080p and 4K, so it runs every `detect_every` frames (and
whenever no face is tracked). In between, each tracked face is re-detected only in a small window
around its last box, at the scale where the detector is fastest. When even that misses (motion blur,
a hand passing), landmarks are re-fitted inside the previous box for a few frames, but only while the
aligned face still looks like the one being tracked, so a covered or vanished face is dropped instead
of getting a face pasted onto whatever is there now.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from swapface.faces import AlignSpec, FaceBackend, alignment_matrix
from swapface.faces.align import is_face_shaped
from swapface.faces.backend import DetectedFace, box_iou, landmark_size
from swapface.swap.smoothing import OneEuroFilter, landmark_filter

WINDOW_GROW = 0.45  # the local search window extends the last box by this fraction on each side
WINDOW_FACE_PX = 100  # faces are resized to about this size for local re-detection (HOG window: 80)
MIN_IOU = 0.3  # a detection continues a track when their boxes overlap at least this much
MIN_LIKENESS = 0.6  # normalised correlation of aligned thumbnails needed to coast on a missed frame
THUMB_SPEC = AlignSpec(64, "tight")
IDENTITY_CHECKS = 4  # times a face that does not match --reference is checked again ...
IDENTITY_RECHECK_EVERY = 15  # ... every this many detected frames


@dataclass
class TrackedFace:
    """A face in the current frame: `landmarks` are smoothed over time, `raw_landmarks` are not."""

    track_id: int
    bbox: np.ndarray
    landmarks: np.ndarray
    raw_landmarks: np.ndarray
    detected: bool  # found by the detector in this frame (False: landmarks re-fitted in the old box)
    selected: bool  # the person to swap (always True without a reference)


@dataclass
class _Track:
    track_id: int
    bbox: np.ndarray
    landmarks: np.ndarray
    thumbnail: np.ndarray
    selected: bool
    smoother: OneEuroFilter | None
    missed: int = 0
    confirmations: int = 0  # frames the detector found this face in
    identity_checks: int = 1


def face_thumbnail(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Aligned 32x32 grey face, zero-mean and unit-norm, for a cheap same-face check."""
    # A plain bilinear warp (no area pre-filter): the thumbnail only has to be comparable frame to frame.
    crop = cv2.warpAffine(image, alignment_matrix(landmarks, THUMB_SPEC), (THUMB_SPEC.size,) * 2,
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    grey = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA)
    v = grey.astype(np.float32).ravel()
    v -= v.mean()
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 1e-3 else np.zeros_like(v)


def shrink(image: np.ndarray, scale: float) -> np.ndarray:
    """Resize for detection: an integer-factor area reduction (OpenCV's fast path) then bilinear, about
    4x cheaper than a fractional area resize and as good for the detector."""
    factor = int(1 / scale) if scale < 0.5 else 1
    if factor > 1:
        h, w = image.shape[:2]
        image = cv2.resize(image[:h - h % factor, :w - w % factor], (w // factor, h // factor),
                           interpolation=cv2.INTER_AREA)
        scale *= factor
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)


class FaceTracker:
    """Per-frame faces with stable identities (track ids) and smoothed landmarks.

    `window_backend` re-detects in the small windows around tracked faces (it should detect at scale
    1, i.e. min_face 80); `is_wanted(image, landmarks)` decides once per new track whether it is the
    person to swap (the `--reference` check); `smooth` is the One-Euro strength (0 = off).
    """

    def __init__(self, backend: FaceBackend, window_backend: FaceBackend | None = None, detect_every: int = 5,
                 smooth: float = 1.0, max_coast: int = 3,
                 is_wanted: Callable[[np.ndarray, np.ndarray], bool] | None = None) -> None:
        self.backend = backend
        self.window_backend = window_backend or backend
        self.detect_every = max(1, detect_every)
        self.smooth = smooth
        self.max_coast = max_coast
        self.is_wanted = is_wanted
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._frames = 0

    def is_keyframe(self, index: int) -> bool:
        """Whether the frame at `index` (counted from 0 in update order) gets a full-frame detection
        even while faces are tracked; its detections can then be computed ahead (see DetectAhead)."""
        return index % self.detect_every == 0

    def update(self, image: np.ndarray, time: float, detections: list[DetectedFace] | None = None
               ) -> list[TrackedFace]:
        """Faces of this frame (frames must come in order; `time` in seconds drives the smoothing).
        `detections`: the backend's full-frame detections of this image, if already made."""
        full = self.is_keyframe(self._frames) or not self._tracks
        self._frames += 1
        if full:
            if detections is None:
                detections = self.backend.detect(image)
            matched = self._associate(detections)
        else:
            matched = {id(t): self._redetect(image, t) for t in self._tracks}
            detections = []
        out: list[TrackedFace] = []
        survivors: list[_Track] = []
        for track in self._tracks:
            found = matched.get(id(track))
            if found is not None:
                self._confirm(track, image, found)
            elif not self._coast(track, image):
                continue
            survivors.append(track)
            out.append(self._emit(track, time, detected=found is not None))
        used = {id(d) for d in matched.values() if d is not None}
        for det in detections:
            if id(det) in used:
                continue
            track = self._new_track(image, det)
            survivors.append(track)
            out.append(self._emit(track, time, detected=True))
        self._tracks = survivors
        return out

    def reset(self) -> None:
        """Forget all faces (the next image is unrelated to the last, e.g. the photos of a folder)."""
        self._tracks = []

    def _associate(self, detections: list[DetectedFace]) -> dict[int, DetectedFace | None]:
        pairs = sorted(((box_iou(t.bbox, d.bbox), i, j) for i, t in enumerate(self._tracks)
                        for j, d in enumerate(detections)), reverse=True)
        matched: dict[int, DetectedFace | None] = {}
        taken: set[int] = set()
        for overlap, i, j in pairs:
            if overlap < MIN_IOU:
                break
            if id(self._tracks[i]) in matched or j in taken:
                continue
            matched[id(self._tracks[i])] = detections[j]
            taken.add(j)
        return matched

    def _redetect(self, image: np.ndarray, track: _Track) -> DetectedFace | None:
        """Detect in a window around the track's last box, resized so the face is ~WINDOW_FACE_PX."""
        h, w = image.shape[:2]
        x0, y0, x1, y1 = track.bbox
        grow = WINDOW_GROW * max(x1 - x0, y1 - y0)
        wx0, wy0 = int(max(0, x0 - grow)), int(max(0, y0 - grow))
        wx1, wy1 = int(min(w, x1 + grow)), int(min(h, y1 + grow))
        if wx1 - wx0 < 16 or wy1 - wy0 < 16:
            return None
        scale = WINDOW_FACE_PX / max(x1 - x0, y1 - y0, 1.0)
        window = image[wy0:wy1, wx0:wx1]
        small = shrink(window, scale)
        boxes = [box for box, _ in self.window_backend.boxes(small)]
        if not boxes:
            return None
        offset = np.array([wx0, wy0, wx0, wy0], np.float64)
        sx, sy = small.shape[1] / window.shape[1], small.shape[0] / window.shape[0]  # as resized
        candidates = [b / np.array([sx, sy, sx, sy]) + offset for b in boxes]
        best = max(candidates, key=lambda b: box_iou(b, track.bbox))
        if box_iou(best, track.bbox) < MIN_IOU:
            return None
        landmarks = self.backend.landmarks(image, best)  # fitted once, at full resolution
        return DetectedFace(best, 0.0, landmarks) if is_face_shaped(landmarks) else None

    def _coast(self, track: _Track, image: np.ndarray) -> bool:
        """Re-fit landmarks in the old box for a missed frame, if the face is still there."""
        track.missed += 1
        if track.missed > self.max_coast:
            return False
        landmarks = self.backend.landmarks(image, track.bbox)
        if float(face_thumbnail(image, landmarks) @ track.thumbnail) < MIN_LIKENESS:
            return False
        shift = landmarks.mean(0) - track.landmarks.mean(0)
        track.bbox = track.bbox + np.tile(shift, 2)
        track.landmarks = landmarks
        return True

    def _confirm(self, track: _Track, image: np.ndarray, det: DetectedFace) -> None:
        track.bbox, track.landmarks, track.missed = det.bbox, det.landmarks, 0
        track.thumbnail = face_thumbnail(image, det.landmarks)
        track.confirmations += 1
        # A face first seen blurred or turned away may fail the identity check: look again a few times.
        if (not track.selected and self.is_wanted is not None and track.identity_checks < IDENTITY_CHECKS
                and track.confirmations % IDENTITY_RECHECK_EVERY == 0):
            track.identity_checks += 1
            track.selected = self.is_wanted(image, det.landmarks)

    def _new_track(self, image: np.ndarray, det: DetectedFace) -> _Track:
        selected = self.is_wanted(image, det.landmarks) if self.is_wanted is not None else True
        track = _Track(self._next_id, det.bbox, det.landmarks, face_thumbnail(image, det.landmarks), selected,
                       landmark_filter(self.smooth))
        self._next_id += 1
        return track

    def _emit(self, track: _Track, time: float, detected: bool) -> TrackedFace:
        raw = track.landmarks
        smoothed = track.smoother(raw, time, landmark_size(raw)) if track.smoother is not None else raw
        return TrackedFace(track.track_id, track.bbox.copy(), smoothed, raw, detected, track.selected)

