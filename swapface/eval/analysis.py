"""The costly part of evaluating a frame pair: face detection, landmarks and identity embeddings (dlib).

It runs in a pool of worker processes when asked (results come back in order, so the numbers do not
depend on the number of workers); everything cheap and order-dependent stays in the main process.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from swapface.eval.metrics import identity_distance
from swapface.faces import DEFAULT_BACKEND, DetectedFace, FaceBackend, make_backend
from swapface.media import Frame
from swapface.workers import process_pool

ORIGINAL_SAMPLE_EVERY = 5  # when the original identity comes from the source, embed every Nth source face


@dataclass(frozen=True)
class AnalysisOptions:
    """Which detector to run, and what the workers need to know to pick the face."""

    backend: str = DEFAULT_BACKEND
    detector: str | None = None  # None: the backend's default
    min_face: int = 80
    original: np.ndarray | None = None  # embedding of the person to judge when a frame shows several


@dataclass
class PairAnalysis:
    """The judged face of a source frame and what the same place looks like in the swapped frame."""

    face: DetectedFace | None = None
    swapped_landmarks: np.ndarray | None = None
    swapped_embedding: np.ndarray | None = None
    source_embedding: np.ndarray | None = None  # only on sampled frames, when the original is not given


def analyse_pair(source: np.ndarray, swapped: np.ndarray, backend: FaceBackend, options: AnalysisOptions,
                 embed_source: bool) -> PairAnalysis:
    """Find the face in the source frame (the one most like the original person when there are several
    and we know who that is, otherwise the largest), re-fit landmarks at the same place in the
    swapped frame (a swap keeps the face in place), and embed the swapped face."""
    faces = backend.detect(source)
    if not faces:
        return PairAnalysis()
    source_embedding = None
    if options.original is not None and len(faces) > 1:
        embeddings = backend.embed_many(source, [f.landmarks for f in faces])
        best = int(np.argmin([identity_distance(e, options.original) for e in embeddings]))
        face = faces[best]
    else:
        face = max(faces, key=lambda f: f.size)
        if embed_source:
            source_embedding = backend.embed(source, face.landmarks)
    landmarks = backend.landmarks(swapped, face.bbox)
    return PairAnalysis(face, landmarks, backend.embed(swapped, landmarks), source_embedding)


_worker_backend: FaceBackend | None = None
_worker_options: AnalysisOptions | None = None


def _init_worker(options: AnalysisOptions) -> None:
    global _worker_backend, _worker_options
    cv2.setNumThreads(1)
    _worker_backend = make_backend(options.backend, detector=options.detector, min_face=options.min_face)
    _worker_options = options


def _analyse_in_worker(source: np.ndarray, swapped: np.ndarray, embed_source: bool) -> PairAnalysis:
    assert _worker_backend is not None and _worker_options is not None
    return analyse_pair(source, swapped, _worker_backend, _worker_options, embed_source)


def _embed_source(frame: Frame, options: AnalysisOptions) -> bool:
    return options.original is None and frame.index % ORIGINAL_SAMPLE_EVERY == 0


def analysed_pairs(pairs: Iterator[tuple[Frame, Frame]], options: AnalysisOptions, workers: int = 1,
                   backend: FaceBackend | None = None) -> Iterator[tuple[Frame, Frame, PairAnalysis]]:
    """Analyse frame pairs in order, in a bounded pipeline of worker processes (or in-process)."""
    if workers <= 1:
        backend = backend or make_backend(options.backend, detector=options.detector, min_face=options.min_face)
        for source, swapped in pairs:
            yield source, swapped, analyse_pair(source.image, swapped.image, backend, options,
                                                _embed_source(source, options))
        return
    with process_pool(workers, _init_worker, (options,)) as pool:
        pending: deque[tuple[Frame, Frame, cf.Future]] = deque()
        for source, swapped in pairs:
            future = pool.submit(_analyse_in_worker, source.image, swapped.image, _embed_source(source, options))
            pending.append((source, swapped, future))
            if len(pending) >= 2 * workers:
                done_source, done_swapped, done = pending.popleft()
                yield done_source, done_swapped, done.result()
        while pending:
            done_source, done_swapped, done = pending.popleft()
            yield done_source, done_swapped, done.result()
