"""Extraction: frames -> detected faces -> aligned crops + metadata in a faceset.

Per frame, the costly analysis (detection, landmarks, crop, sharpness, identity embedding) runs in a
pool of worker processes; filtering by identity and near-duplicates, and writing, run in order in the
main process so the result does not depend on the number of workers, and a resumed run continues
exactly where the faceset's committed progress says.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from swapface.atomic import check_folder_writable, remove_stale_temporaries
from swapface.errors import InputError
from swapface.faces import DEFAULT_BACKEND, AlignSpec, FaceBackend, alignment_matrix, crop_face, make_backend
from swapface.faces.align import transform_points
from swapface.faces.backend import box_iou
from swapface.faces.quality import sharpness
from swapface.faceset.store import FaceRecord, Faceset, is_faceset
from swapface.media import Frame, open_media, probe
from swapface.outputs import check_outputs
from swapface.workers import process_pool

COMMIT_SECONDS = 2.0  # how much work an abrupt kill can lose (it is redone on resume)
DUPLICATE_LANDMARK_SHIFT = 0.004  # mean landmark motion, as a fraction of the crop, below which ...
DUPLICATE_PIXEL_DIFF = 3.0  # ... and mean grey-level change (0-255) below which a face is a duplicate


@dataclass(frozen=True)
class ExtractOptions:
    """What to keep. Defaults suit training data: faces of 80 px and up, every frame."""

    spec: AlignSpec = field(default_factory=AlignSpec)
    every: int = 1
    min_face: int = 80
    backend: str = DEFAULT_BACKEND
    detector: str | None = None  # None: the backend's default
    min_score: float | None = None  # None: the backend's default
    reference: np.ndarray | None = None  # mean identity embedding of the wanted person
    max_distance: float = 0.6
    min_sharpness: float = 0.0
    dedupe: bool = False
    workers: int = 1
    max_frames: int | None = None  # stop each input after this many frames (quick trials, tests)
    colorspace: str | None = None  # OCIO colour space of image sequence inputs (None: from the file)


@dataclass
class ExtractStats:
    """Counts for the progress bar and the closing summary."""

    frames_total: int | None = None  # for a progress bar; None when a video does not say
    frames_read: int = 0
    frames_analysed: int = 0
    frames_resumed: int = 0
    faces_found: int = 0
    faces_kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.frames_read / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Candidate:
    """A face analysed in a worker, before the order-dependent filters."""

    bbox: np.ndarray
    score: float
    landmarks: np.ndarray
    matrix: np.ndarray
    crop: np.ndarray
    crop_landmarks: np.ndarray
    sharpness: float
    embedding: np.ndarray | None
    reject: str | None
    dense: np.ndarray | None = None


def analyse_frame(image: np.ndarray, backend: FaceBackend, options: ExtractOptions) -> list[Candidate]:
    """Detect, align and score every face of one frame; rejected faces carry the reason."""
    found = [f for f in backend.detect(image)]
    candidates: list[Candidate] = []
    for face in found:
        matrix = alignment_matrix(face.landmarks, options.spec)
        crop = crop_face(image, matrix, options.spec.size)
        reject = None
        if face.size < options.min_face:
            reject = "too small"
        score = sharpness(crop)
        if reject is None and score < options.min_sharpness:
            reject = "blurred"
        candidates.append(Candidate(face.bbox, face.score, face.landmarks, matrix, crop,
                                    transform_points(face.landmarks, matrix), score, None, reject, face.dense))
    keep = [c for c in candidates if c.reject is None]
    for candidate, embedding in zip(keep, backend.embed_many(image, [c.landmarks for c in keep]),
                                    strict=True):
        candidate.embedding = embedding
    return candidates


def make_extract_backend(options: ExtractOptions) -> FaceBackend:
    return make_backend(options.backend, detector=options.detector, min_face=options.min_face,
                        min_score=options.min_score)


# -- worker pool ------------------------------------------------------------------------------------

_worker_backend: FaceBackend | None = None
_worker_options: ExtractOptions | None = None


def _init_worker(options: ExtractOptions) -> None:
    global _worker_backend, _worker_options
    cv2.setNumThreads(1)
    _worker_backend = make_extract_backend(options)
    _worker_options = options


def _analyse_in_worker(image: np.ndarray) -> list[Candidate]:
    assert _worker_backend is not None and _worker_options is not None
    return analyse_frame(image, _worker_backend, _worker_options)


def _analysed(frames: Iterator[Frame], options: ExtractOptions,
              backend: FaceBackend | None) -> Iterator[tuple[Frame, list[Candidate]]]:
    """Analyse frames in order, in a bounded pipeline of worker processes (or in-process)."""
    if options.workers <= 1:
        backend = backend or make_extract_backend(options)
        for frame in frames:
            yield frame, analyse_frame(frame.image, backend, options)
        return
    with process_pool(options.workers, _init_worker, (options,)) as pool:
        pending: deque[tuple[Frame, cf.Future]] = deque()
        for frame in frames:
            pending.append((frame, pool.submit(_analyse_in_worker, frame.image)))
            if len(pending) >= 2 * options.workers:
                done_frame, future = pending.popleft()
                yield done_frame, future.result()
        while pending:
            done_frame, future = pending.popleft()
            yield done_frame, future.result()


# -- order-dependent filters ------------------------------------------------------------------------

def _thumbnail(crop: np.ndarray) -> np.ndarray:
    return cv2.resize(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA
                      ).astype(np.float32)


@dataclass
class _Kept:
    bbox: np.ndarray
    crop_landmarks: np.ndarray
    thumbnail: np.ndarray


def _is_duplicate(candidate: Candidate, previous: list[_Kept], size: int) -> bool:
    """Same place, same pose and same pixels as a face kept in the last frame that kept any."""
    for kept in previous:
        if box_iou(candidate.bbox, kept.bbox) < 0.5:
            continue
        shift = np.linalg.norm(candidate.crop_landmarks - kept.crop_landmarks, axis=1).mean() / size
        pixels = float(np.abs(_thumbnail(candidate.crop) - kept.thumbnail).mean())
        if shift < DUPLICATE_LANDMARK_SHIFT and pixels < DUPLICATE_PIXEL_DIFF:
            return True
    return False


def _last_kept(faceset: Faceset, source: str) -> list[_Kept]:
    """Dedupe state of a resumed source: the faces of its last frame that kept any."""
    inside = source.rstrip(os.sep) + os.sep  # an image folder's faces name their own image files
    records = [r for r in faceset.records() if r.source == source or r.source.startswith(inside)]
    if not records:
        return []
    last = max(r.frame for r in records)
    return [_Kept(r.bbox, r.crop_landmarks, _thumbnail(faceset.load_image(r)))
            for r in records if r.frame == last]


# -- the stage --------------------------------------------------------------------------------------

ProgressCallback = Callable[[ExtractStats], None]


def count_frames(inputs: list[Path], max_frames: int | None = None) -> int | None:
    """Frames the inputs hold (None if a video does not say); probing also fails early, before any
    work, on an input that is missing, unreadable or truncated."""
    counts = [probe(path).frame_count for path in inputs]
    if any(count is None for count in counts):
        return None
    return sum(min(count, max_frames or count) for count in counts)


def extract(inputs: list[Path], output: Path, options: ExtractOptions,
            progress: ProgressCallback | None = None, backend: FaceBackend | None = None) -> ExtractStats:
    """Build (or resume) the faceset at `output` from videos, images and image folders."""
    frames_total = count_frames(inputs, options.max_frames)
    check_outputs(inputs, folders=[output])  # e.g. a faceset extracted into itself
    check_folder_writable(output)
    created = not is_faceset(output)
    if created and output.exists() and any(output.iterdir()):
        raise InputError(output, "exists, is not empty and is not a faceset")
    if not created:
        remove_stale_temporaries(output)  # face PNGs a killed run was writing
    stats = ExtractStats(frames_total=frames_total)
    start = time.monotonic()
    faceset = Faceset.create(output, options.spec, options.backend)
    kept_total = 0
    try:
        for path in inputs:
            _extract_source(path, faceset, options, stats, progress, backend, start)
    finally:
        kept_total = len(faceset)
        faceset.close()
        stats.seconds = time.monotonic() - start
        if created and kept_total == 0:
            shutil.rmtree(output)  # leave nothing behind for a run that produced nothing
    if kept_total == 0:
        names = ", ".join(str(p) for p in inputs)
        raise InputError(names, "no faces found" + (" of the reference person" if options.reference
                                                    is not None else ""))
    return stats


def _source_key(path: Path, faceset: Faceset) -> str:
    """The file's real path, so the same footage reached through a link (or named twice) resumes instead
    of being extracted again as a new source. Facesets made before this keyed sources by the absolute
    path with links unresolved: a source already held under that key keeps it."""
    real, unresolved = os.path.realpath(path), os.path.abspath(path)
    if unresolved != real and (faceset.next_frame(unresolved) > 0 or faceset.is_complete(unresolved)):
        return unresolved
    return real


def _extract_source(path: Path, faceset: Faceset, options: ExtractOptions, stats: ExtractStats,
                    progress: ProgressCallback | None, backend: FaceBackend | None, start: float) -> None:
    source = _source_key(path, faceset)
    if faceset.is_complete(source):
        return
    resume_at = faceset.next_frame(source)
    previous = _last_kept(faceset, source) if options.dedupe else []

    def wanted() -> Iterator[Frame]:
        for frame in open_media(path, options.colorspace):
            if options.max_frames is not None and frame.index >= options.max_frames:
                break
            stats.frames_read += 1
            if frame.index < resume_at:
                stats.frames_resumed += 1
                continue
            if frame.index % options.every == 0:
                yield frame

    buffered: list[tuple[FaceRecord, np.ndarray]] = []
    next_frame = resume_at
    last_commit = time.monotonic()
    for frame, candidates in _analysed(wanted(), options, backend):
        stats.frames_analysed += 1
        stats.faces_found += len(candidates)
        kept_here: list[_Kept] = []
        for face_index, candidate in enumerate(candidates):
            reason = candidate.reject
            if reason is None and options.reference is not None:
                distance = float(np.linalg.norm(candidate.embedding - options.reference))
                if distance > options.max_distance:
                    reason = "other person"
            if reason is None and options.dedupe and _is_duplicate(candidate, previous, options.spec.size):
                reason = "duplicate"
            if reason is not None:
                stats.rejected[reason] += 1
                continue
            stats.faces_kept += 1
            height, width = frame.image.shape[:2]
            frame_source = source if Path(frame.source) == path else _source_key(Path(frame.source), faceset)
            record = FaceRecord(
                filename=faceset.filename_for(frame_source, frame.index, face_index), source=frame_source,
                frame=frame.index, time=frame.time, face=face_index, bbox=candidate.bbox,
                landmarks=candidate.landmarks, crop_landmarks=candidate.crop_landmarks,
                matrix=candidate.matrix, embedding=candidate.embedding, sharpness=candidate.sharpness,
                score=candidate.score, frame_width=width, frame_height=height, dense=candidate.dense,
            )
            buffered.append((record, candidate.crop))
            kept_here.append(_Kept(candidate.bbox, candidate.crop_landmarks, _thumbnail(candidate.crop)))
        if kept_here:
            previous = kept_here
        next_frame = frame.index + 1
        if time.monotonic() - last_commit > COMMIT_SECONDS:
            faceset.commit_frames(source, buffered, next_frame)
            buffered, last_commit = [], time.monotonic()
        if progress is not None:
            stats.seconds = time.monotonic() - start
            progress(stats)
    faceset.commit_frames(source, buffered, max(next_frame, resume_at), complete=True)


def reference_embedding(path: Path, backend: FaceBackend | None = None) -> np.ndarray:
    """Mean identity embedding of a faceset, or of the largest face in an image or image folder."""
    if is_faceset(path):
        with Faceset.open(path) as faceset:
            return faceset.mean_embedding()
    backend = backend or make_backend()
    embeddings = []
    for frame in open_media(path):
        faces = backend.detect(frame.image)
        if faces:
            largest = max(faces, key=lambda f: f.size)
            embeddings.append(backend.embed(frame.image, largest.landmarks))
        if frame.index >= 50:
            break
    if not embeddings:
        raise InputError(path, "no face found in the reference")
    return np.mean(embeddings, 0)
