"""Full-frame detections of the tracker's keyframes, made ahead of it in worker threads.

Full-frame detection is most of the tracking cost at 1080p and above, and a keyframe's detections do
not depend on what was tracked before it, so they can start as soon as the frame is decoded. dlib
releases the GIL while it detects; each worker thread has its own backend (dlib's detectors keep
scratch state). The tracker itself stays sequential, now doing only the cheap windowed work.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext

from swapface.faces import FaceBackend
from swapface.faces.backend import DetectedFace
from swapface.media import Frame


class DetectAhead:
    """Iterate `(frame, detections or None)`: detections for frames where `is_keyframe(index)`, computed
    by `workers` threads up to `ahead` frames before the consumer gets to them."""

    def __init__(self, frames: Iterable[Frame], is_keyframe: Callable[[int], bool],
                 make_backend: Callable[[], FaceBackend], workers: int, ahead: int,
                 timer: Callable[[], AbstractContextManager] = nullcontext) -> None:
        self._frames, self._is_keyframe, self._make_backend = frames, is_keyframe, make_backend
        self._ahead = max(1, ahead)
        self._timer = timer  # wraps each detection (for the per-stage times)
        self._local = threading.local()
        self._pool = cf.ThreadPoolExecutor(max(1, workers), thread_name_prefix="swapface-detect")

    def _detect(self, frame: Frame) -> list[DetectedFace]:
        backend = getattr(self._local, "backend", None)
        if backend is None:
            backend = self._local.backend = self._make_backend()
        with self._timer():
            return backend.detect(frame.image)

    def __iter__(self) -> Iterator[tuple[Frame, list[DetectedFace] | None]]:
        waiting: deque[tuple[Frame, cf.Future | None]] = deque()
        try:
            for index, frame in enumerate(self._frames):
                future = self._pool.submit(self._detect, frame) if self._is_keyframe(index) else None
                waiting.append((frame, future))
                if len(waiting) > self._ahead:
                    yield self._next(waiting)
            while waiting:
                yield self._next(waiting)
        finally:
            for _, future in waiting:
                if future is not None:
                    future.cancel()
            self._pool.shutdown(wait=True)

    @staticmethod
    def _next(waiting: deque) -> tuple[Frame, list[DetectedFace] | None]:
        frame, future = waiting.popleft()
        return frame, None if future is None else future.result()
