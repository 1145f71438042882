"""The evaluation stage: score a swapped video against its source, frame by frame.

Both streams are read in lockstep, one frame at a time. The face is found in the *source* frame and
measured at the same place in the swapped frame, so every number compares like with like: identity
(is it the target person now?), expression and pose (did the swap keep them?), temporal stability
(did it add flicker?), seams (can one see where the new face ends?), expression over the clip (does the
face move with the source's? expression.py), sharpness (against the face it replaces, same footage, same
crop) and light (skin colour per region against the source's). Only per-frame numbers, one
128-D embedding per frame and a handful of thumbnails are kept, so memory does not grow with the video.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from swapface.errors import InputError
from swapface.eval.analysis import AnalysisOptions, PairAnalysis, analysed_pairs
from swapface.eval.expression import ExpressionScores, expression_scores
from swapface.eval.metrics import (
    SEAM_PARTS,
    Summary,
    angle_difference,
    boundary_band,
    finite_mean,
    flicker_ratio,
    head_pose,
    high_frequency_energy,
    identity_distance,
    landmark_nme,
    region_light_difference,
    seam_score,
    summarise,
    temporal_change,
)
from swapface.faces import DEFAULT_BACKEND, AlignSpec, FaceBackend, alignment_matrix, crop_face, make_backend
from swapface.faces.align import transform_points
from swapface.faces.masks import hull_mask
from swapface.faceset.extract import reference_embedding
from swapface.media import Frame, open_media, probe

STRIP_SIZE = 128  # side of the face thumbnails shown in the report


@dataclass(frozen=True)
class EvalOptions:
    """How to measure. Faces are compared in aligned crops (`crop_size`, `coverage`), so the numbers do
    not depend on the video's resolution."""

    crop_size: int = 256
    coverage: str = "whole"
    seam_band: float = 0.04  # half-width of the seam band, as a fraction of the crop side
    backend: str = DEFAULT_BACKEND
    detector: str | None = None  # None: the backend's default
    min_face: int = 80
    max_frames: int | None = None  # stop after this many frames of each stream (quick checks, tests)
    workers: int = 1  # processes for face detection and embeddings
    strips: int = 4  # evenly spaced frames shown in the report
    worst_strips: int = 2  # worst frames shown per metric


@dataclass
class FrameScores:
    """Every number measured on one frame; NaN where it could not be measured (no face, first frame)."""

    frame: int
    time: float
    face: bool = False
    d_target: float = math.nan
    d_original: float = math.nan
    nme: float = math.nan
    yaw_diff: float = math.nan
    pitch_diff: float = math.nan
    roll_diff: float = math.nan
    source_yaw: float = math.nan
    change_source: float = math.nan
    change_swapped: float = math.nan
    seam_colour: float = math.nan
    seam_gradient: float = math.nan
    seam_brows: float = math.nan  # the seam colour step along each part of the face's outline
    seam_sides: float = math.nan
    seam_jaw: float = math.nan
    sharpness: float = math.nan  # high-frequency energy of the swapped face / the source face's, same crop
    skin_brightness: float = math.nan  # mean |L step| of forehead, cheeks, chin vs the source's skin (LAB levels)
    skin_colour: float = math.nan  # mean (a, b) step of the same regions

    @property
    def flicker_excess(self) -> float:
        """How much more the swapped face changed since the last frame than the source face did."""
        return self.change_swapped - self.change_source


@dataclass(frozen=True)
class Metric:
    """A per-frame metric as reported: JSON key, label, unit and which direction is worse."""

    key: str
    label: str
    unit: str
    higher_is_better: bool = False


METRICS: tuple[Metric, ...] = (
    Metric("d_target", "identity distance to target", "dlib 128-D"),
    Metric("d_original", "identity distance to original", "dlib 128-D", higher_is_better=True),
    Metric("nme", "landmark NME vs source", "x inter-ocular"),
    Metric("yaw_diff", "yaw difference", "deg"),
    Metric("pitch_diff", "pitch difference", "deg"),
    Metric("roll_diff", "roll difference", "deg"),
    Metric("change_source", "frame-to-frame change, source", "levels"),
    Metric("change_swapped", "frame-to-frame change, swapped", "levels"),
    Metric("flicker_excess", "extra frame-to-frame change", "levels"),
    Metric("seam_colour", "seam colour step", "levels"),
    Metric("seam_gradient", "seam gradient", "levels/px"),
    *(Metric(f"seam_{part}", f"seam colour step, {part}", "levels") for part in SEAM_PARTS),
    Metric("sharpness", "sharpness vs source face", "ratio", higher_is_better=True),
    Metric("skin_brightness", "skin brightness step vs source", "LAB levels"),
    Metric("skin_colour", "skin colour step vs source", "LAB levels"),
)


@dataclass
class Strip:
    """Thumbnails of one frame for the report: source | swapped | mask and seam band | difference."""

    frame: int
    time: float
    reason: str
    images: list[np.ndarray]


@dataclass
class EvalResult:
    """The outcome of an evaluation: per-frame numbers, summaries and thumbnails."""

    source: str
    swapped: str
    target: str
    original: str | None
    options: EvalOptions
    frames: list[FrameScores]
    summaries: dict[str, Summary]
    closer_to_target: float
    flicker_ratio: float
    strips: list[Strip]
    seconds: float
    expression: ExpressionScores | None = None  # over the frames with a face (None: fewer than 2)
    sharpness: float = math.nan  # whole clip: summed energy of swapped faces / of the source faces
    light_regions: dict[str, dict[str, float]] = field(default_factory=dict)  # region -> mean |dL|, colour step

    @property
    def frames_with_face(self) -> int:
        return sum(f.face for f in self.frames)


ProgressCallback = Callable[[int, int | None], None]


# -- inputs ---------------------------------------------------------------------------------------

def _expected_frames(path: Path, max_frames: int | None) -> tuple[int | None, tuple[int, int]]:
    info = probe(path)  # also fails early, in one line, on a missing, unreadable or truncated input
    count = info.frame_count
    if count is not None and max_frames is not None:
        count = min(count, max_frames)
    return count, (info.width, info.height)


def check_inputs(source: Path, swapped: Path, max_frames: int | None) -> int | None:
    """Both streams readable, of the same size and (where the container says) the same length."""
    source_count, source_size = _expected_frames(source, max_frames)
    swapped_count, swapped_size = _expected_frames(swapped, max_frames)
    if source_size != swapped_size:
        raise InputError(swapped, f"is {swapped_size[0]}x{swapped_size[1]} but the source is "
                                  f"{source_size[0]}x{source_size[1]}; evaluate a swap at the source's size")
    if source_count is not None and swapped_count is not None and source_count != swapped_count:
        raise InputError(swapped, f"has {swapped_count} frames but the source {source} has {source_count}")
    return source_count


def lockstep(source: Path, swapped: Path, max_frames: int | None) -> Iterator[tuple[Frame, Frame]]:
    """Pairs of frames with the same index; a stream that ends early is an error, not a silent cut."""
    missing = object()
    pairs = itertools.zip_longest(open_media(source), open_media(swapped), fillvalue=missing)
    for index, (a, b) in enumerate(pairs):
        if max_frames is not None and index >= max_frames:
            return
        if a is missing or b is missing:
            shorter = source if a is missing else swapped
            raise InputError(shorter, f"ends after {index} frames, the other stream has more")
        if a.image.shape != b.image.shape:
            raise InputError(swapped, f"frame {index} is {b.image.shape[1]}x{b.image.shape[0]}, the "
                                      f"source's is {a.image.shape[1]}x{a.image.shape[0]}")
        yield a, b


# -- per-frame measurement --------------------------------------------------------------------------

@dataclass
class _Previous:
    """The last frame's aligned crops, for the frame-to-frame change."""

    frame: int
    source: np.ndarray
    swapped: np.ndarray


@dataclass
class _Thumbnails:
    """Bounded choice of frames for the report: evenly spaced ones (the stride doubles whenever too
    many are kept, so any length of video ends with at most `count` of them), plus the worst few per
    metric (small heaps)."""

    count: int
    worst: int
    stride: int = 1
    even: list[Strip] = field(default_factory=list)
    heaps: dict[str, list[tuple[float, int, Strip]]] = field(default_factory=dict)

    def offer_even(self, frame: int, make: Callable[[], Strip]) -> None:
        if self.count <= 0 or frame % self.stride:
            return
        self.even.append(make())
        while len(self.even) > self.count:
            self.stride *= 2
            self.even = [s for s in self.even if s.frame % self.stride == 0]

    def offer_worst(self, key: str, badness: float, frame: int, make: Callable[[], Strip]) -> None:
        """Keep the frame if it is among the worst so far (frames with nothing wrong are not shown)."""
        if self.worst <= 0 or not math.isfinite(badness) or badness <= 0:
            return
        heap = self.heaps.setdefault(key, [])
        if len(heap) < self.worst:
            heapq.heappush(heap, (badness, frame, make()))
        elif badness > heap[0][0]:
            heapq.heapreplace(heap, (badness, frame, make()))

    def strips(self) -> list[Strip]:
        """Evenly spaced frames, then the worst ones; a frame chosen twice is shown once, with both reasons."""
        chosen: dict[int, Strip] = {}
        candidates = list(self.even)
        for heap in self.heaps.values():
            candidates.extend(strip for _, _, strip in sorted(heap, reverse=True))
        for strip in candidates:
            if strip.frame in chosen:
                chosen[strip.frame].reason += f", {strip.reason}"
            else:
                chosen[strip.frame] = strip
        return list(chosen.values())


def _thumbnail(crop: np.ndarray) -> np.ndarray:
    return cv2.resize(crop, (STRIP_SIZE, STRIP_SIZE), interpolation=cv2.INTER_AREA)


def _strip(frame: Frame, reason: str, source: np.ndarray, swapped: np.ndarray, mask: np.ndarray,
           band: np.ndarray) -> Strip:
    """Source | swapped | mask (green) with the seam band (red) over the swapped face | |difference|x4."""
    overlay = swapped.astype(np.float32) * 0.5
    overlay[..., 1] += 110.0 * mask
    overlay[band] = overlay[band] * 0.3 + np.array([255.0, 40.0, 40.0]) * 0.7
    difference = np.clip(np.abs(swapped.astype(np.int16) - source.astype(np.int16)) * 4, 0, 255)
    images = [source, swapped, np.clip(overlay, 0, 255).astype(np.uint8), difference.astype(np.uint8)]
    return Strip(frame.index, frame.time, reason, [_thumbnail(i) for i in images])


class _FrameJudge:
    """Measures one analysed frame pair at a time and remembers what the next frame needs."""

    def __init__(self, options: EvalOptions, target: np.ndarray, original: np.ndarray | None) -> None:
        self.options = options
        self.spec = AlignSpec(options.crop_size, options.coverage)
        self.band = max(1, round(options.seam_band * options.crop_size))
        self.target = target
        self.original = original
        self.previous: _Previous | None = None
        self.swapped_embeddings: list[np.ndarray] = []  # one per frame with a face, for d_original
        self.source_embeddings: list[np.ndarray] = []  # sampled source faces: the original, if not given
        self.unsampled: tuple[np.ndarray, np.ndarray] | None = None  # a source face to embed if none was
        self.thumbnails = _Thumbnails(options.strips, options.worst_strips)
        # Landmarks of both faces in the source's aligned crop (head motion removed), for expression_scores.
        self.aligned: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        self.energy = [0.0, 0.0]  # summed high-frequency energy of swapped and source faces
        self.light: dict[str, list[tuple[float, float]]] = {}

    def measure(self, source: Frame, swapped: Frame, analysis: PairAnalysis) -> FrameScores:
        scores = FrameScores(source.index, source.time)
        if analysis.face is None:
            self.previous = None
            return scores
        scores.face = True
        landmarks, swapped_landmarks = analysis.face.landmarks, analysis.swapped_landmarks
        self.swapped_embeddings.append(analysis.swapped_embedding)
        if analysis.source_embedding is not None:
            self.source_embeddings.append(analysis.source_embedding)
            self.unsampled = None
        elif self.original is None and not self.source_embeddings and self.unsampled is None:
            self.unsampled = (source.image, landmarks)
        scores.d_target = identity_distance(analysis.swapped_embedding, self.target)
        if self.original is not None:
            scores.d_original = identity_distance(analysis.swapped_embedding, self.original)

        scores.nme = landmark_nme(swapped_landmarks, landmarks)
        size = source.image.shape[:2]
        try:
            source_pose = head_pose(landmarks, size)
            difference = angle_difference(head_pose(swapped_landmarks, size), source_pose)
        except (ValueError, cv2.error):
            pass  # degenerate landmarks: pose stays unmeasured (NaN) for this frame
        else:
            scores.yaw_diff, scores.pitch_diff, scores.roll_diff = difference.yaw, difference.pitch, difference.roll
            scores.source_yaw = source_pose.yaw

        # Both frames are cropped with the source's alignment: head motion cancels, added jitter does not.
        matrix = alignment_matrix(landmarks, self.spec)
        source_crop = crop_face(source.image, matrix, self.spec.size)
        swapped_crop = crop_face(swapped.image, matrix, self.spec.size)
        crop_points = transform_points(landmarks, matrix)
        mask = hull_mask(crop_points, (self.spec.size, self.spec.size))
        seam = seam_score(swapped_crop, source_crop, mask, self.band, crop_points)
        scores.seam_colour, scores.seam_gradient = seam.colour, seam.gradient
        for part, step in seam.parts.items():
            setattr(scores, f"seam_{part}", step)
        self.aligned[0].append(crop_points)
        self.aligned[1].append(transform_points(swapped_landmarks, matrix))
        energy = high_frequency_energy(swapped_crop, mask), high_frequency_energy(source_crop, mask)
        self.energy = [self.energy[0] + energy[0], self.energy[1] + energy[1]]
        scores.sharpness = energy[0] / energy[1] if energy[1] > 0 else math.nan
        light = region_light_difference(swapped_crop, source_crop, crop_points)
        for region, step in light.items():
            self.light.setdefault(region, []).append(step)
        scores.skin_brightness = finite_mean([abs(b) for b, _ in light.values()])
        scores.skin_colour = finite_mean([c for _, c in light.values()])
        if self.previous is not None and self.previous.frame == source.index - 1:
            scores.change_source = temporal_change(self.previous.source, source_crop, mask)
            scores.change_swapped = temporal_change(self.previous.swapped, swapped_crop, mask)
        self.previous = _Previous(source.index, source_crop, swapped_crop)

        def make(reason: str) -> Callable[[], Strip]:
            return lambda: _strip(source, reason, source_crop, swapped_crop, mask, boundary_band(mask, self.band))

        self.thumbnails.offer_even(source.index, make("sample"))
        self.thumbnails.offer_worst("d_target", scores.d_target, source.index, make("farthest from target"))
        self.thumbnails.offer_worst("nme", scores.nme, source.index, make("largest landmark error"))
        self.thumbnails.offer_worst("seam_colour", scores.seam_colour, source.index, make("strongest seam"))
        self.thumbnails.offer_worst("flicker_excess", scores.flicker_excess, source.index,
                                    make("most added flicker"))
        return scores

    def clip_scores(self) -> tuple[ExpressionScores | None, float, dict[str, dict[str, float]]]:
        """Expression over the clip, its sharpness ratio and its light per skin region."""
        source, swapped = self.aligned
        expression = expression_scores(np.stack(source), np.stack(swapped)) if len(source) >= 2 else None
        sharpness = self.energy[0] / self.energy[1] if self.energy[1] > 0 else math.nan
        light = {region: {"brightness": finite_mean([abs(v[0]) for v in values]),
                          "colour": finite_mean([v[1] for v in values])} for region, values in self.light.items()}
        return expression, sharpness, light

    def original_identity(self, backend: FaceBackend) -> np.ndarray:
        """The original person: given, or the mean of (a sample of) the source frames' own faces."""
        if self.original is not None:
            return self.original
        if not self.source_embeddings and self.unsampled is not None:
            # Faces only on frames the sampling skipped: embed the first of them.
            self.source_embeddings.append(backend.embed(*self.unsampled))
        return np.mean(self.source_embeddings, 0)


# -- the stage ----------------------------------------------------------------------------------------

def evaluate(source: Path, swapped: Path, target: Path, original: Path | None = None,
             options: EvalOptions | None = None, progress: ProgressCallback | None = None,
             backend: FaceBackend | None = None) -> EvalResult:
    """Score `swapped` (a swap of `source`) for the identity `target` (faceset, image or folder)."""
    options = options or EvalOptions()
    start = time.monotonic()
    total = check_inputs(source, swapped, options.max_frames)
    backend = backend or make_backend(options.backend, detector=options.detector, min_face=options.min_face)
    target_embedding = reference_embedding(target, backend)
    original_embedding = reference_embedding(original, backend) if original is not None else None
    judge = _FrameJudge(options, target_embedding, original_embedding)
    analysis = AnalysisOptions(options.backend, options.detector, options.min_face, original_embedding)

    frames: list[FrameScores] = []
    pairs = lockstep(source, swapped, options.max_frames)
    for source_frame, swapped_frame, found in analysed_pairs(pairs, analysis, options.workers, backend):
        frames.append(judge.measure(source_frame, swapped_frame, found))
        if progress is not None:
            progress(len(frames), total)
    with_face = [f for f in frames if f.face]
    if not with_face:
        raise InputError(source, f"no face found in any of its {len(frames)} frames")

    if original_embedding is None:
        # The mean of the source's faces is known only now: compare every swapped face with it.
        distances = identity_distance(np.stack(judge.swapped_embeddings), judge.original_identity(backend))
        for scores, distance in zip(with_face, np.atleast_1d(distances), strict=True):
            scores.d_original = float(distance)
    closer = float(np.mean([f.d_target < f.d_original for f in with_face]))

    summaries = {m.key: summarise([getattr(f, m.key) for f in frames], m.higher_is_better) for m in METRICS}
    steady = [f for f in frames if math.isfinite(f.change_source)]
    ratio = (flicker_ratio([f.change_swapped for f in steady], [f.change_source for f in steady])
             if steady else math.nan)
    expression, sharpness, light = judge.clip_scores()
    return EvalResult(str(source), str(swapped), str(target), None if original is None else str(original),
                      options, frames, summaries, closer, ratio, judge.thumbnails.strips(),
                      time.monotonic() - start, expression, sharpness, light)
