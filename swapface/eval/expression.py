"""Expression that moves with the source, measured apart from face shape.

Two people differ in shape, so plain landmark NME between a source and its swap mixes identity with
expression. Here each frame gives a few expression signals from its 68 landmarks (mouth opening and
width, eye openings, brow heights, all in inter-ocular units), and a clip compares how the signals
*move*: Pearson correlation and mean absolute difference per signal, blink agreement, and the
"dynamic NME" (inner landmarks minus their own clip mean, source against swap), where a constant
shape difference costs nothing and missed motion costs everything.

`expression_signals` is written with indexing and arithmetic only, so the same function serves numpy
(evaluation) and torch (training's expression loss): one definition of what an expression is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from swapface.faces.template import INNER_FACE, LEFT_EYE, RIGHT_EYE

# iBUG-68 point pairs: upper and lower inner lip, upper and lower lids (image-left eye = points 36-41).
MOUTH_PAIRS = ((61, 67), (62, 66), (63, 65))
LEFT_LID_PAIRS = ((37, 41), (38, 40))
RIGHT_LID_PAIRS = ((43, 47), (44, 46))
LEFT_BROW, RIGHT_BROW = (18, 19, 20), (23, 24, 25)  # the brows' middle points (their ends sag with pose)
MOUTH_CORNERS = (48, 54)
SIGNALS = ("mouth_open", "mouth_width", "eye_left", "eye_right", "brow_left", "brow_right")
BLINK_SHARE = 0.6  # an eye counts as closed below this share of its clip median opening


def _distance(points, i: int, j: int):
    """Distance between points i and j of (..., 68, 2) landmarks (numpy or torch)."""
    d = points[..., i, :] - points[..., j, :]
    return ((d * d).sum(-1) + 1e-12) ** 0.5


def _mean_point(points, indices):
    return sum(points[..., i, :] for i in indices) / len(indices)


def _mean_distance(points, pairs):
    return sum(_distance(points, i, j) for i, j in pairs) / len(pairs)


def expression_signals(points):
    """(..., 68, 2) landmarks -> (..., 6) signals in SIGNALS order, each divided by the inter-ocular distance.

    Brow height is the distance from the middle of a brow to its eye's centre; openings are mean
    lid/lip gaps. Distances, not coordinates: they do not change with the head's place or roll.
    """
    eye_l = _mean_point(points, range(LEFT_EYE.start, LEFT_EYE.stop))
    eye_r = _mean_point(points, range(RIGHT_EYE.start, RIGHT_EYE.stop))
    d = eye_r - eye_l
    iod = ((d * d).sum(-1) + 1e-12) ** 0.5
    brow_l, brow_r = _mean_point(points, LEFT_BROW) - eye_l, _mean_point(points, RIGHT_BROW) - eye_r
    values = [_mean_distance(points, MOUTH_PAIRS), _distance(points, *MOUTH_CORNERS),
              _mean_distance(points, LEFT_LID_PAIRS), _mean_distance(points, RIGHT_LID_PAIRS),
              ((brow_l * brow_l).sum(-1) + 1e-12) ** 0.5, ((brow_r * brow_r).sum(-1) + 1e-12) ** 0.5]
    stack = np.stack if isinstance(points, np.ndarray) else _torch_stack
    return stack([v / iod for v in values], -1)


def _torch_stack(values, dim):
    import torch

    return torch.stack(values, dim)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two series; NaN when either does not vary (nothing to follow)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a - a.mean(), b - b.mean()
    norm = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / norm) if norm > 1e-12 else math.nan


def closed_eyes(openings: np.ndarray) -> np.ndarray:
    """Frames where an eye is closed: below BLINK_SHARE of the clip's own median opening, so that
    people with narrower eyes are judged against themselves."""
    openings = np.asarray(openings, np.float64)
    return openings < BLINK_SHARE * np.median(openings)


def blink_agreement(source_closed: np.ndarray, swap_closed: np.ndarray) -> float:
    """Frames with the eyes closed in both / frames with them closed in either (1 = every blink carried and
    none added; 0 = none carried); NaN when neither ever closes."""
    either = int((source_closed | swap_closed).sum())
    return float((source_closed & swap_closed).sum() / either) if either else math.nan


def dynamic_nme(source: np.ndarray, swap: np.ndarray) -> float:
    """Mean distance between the inner landmarks' motion (each set minus its own clip mean), source against
    swap, divided by the source's mean inter-ocular distance. Landmarks (N, 68, 2) in one frame of reference
    per face (aligned crops), so head motion is not in it. 0 = the swap moves exactly like the source."""
    source, swap = np.asarray(source, np.float64), np.asarray(swap, np.float64)
    source_motion = source[:, INNER_FACE] - source[:, INNER_FACE].mean(0)
    swap_motion = swap[:, INNER_FACE] - swap[:, INNER_FACE].mean(0)
    eyes = source[:, LEFT_EYE].mean(1) - source[:, RIGHT_EYE].mean(1)
    iod = float(np.linalg.norm(eyes, axis=-1).mean())
    return float(np.linalg.norm(source_motion - swap_motion, axis=-1).mean() / iod)


@dataclass(frozen=True)
class ExpressionScores:
    """How a swapped clip's expression follows its source's (see the module docstring)."""

    correlation: dict[str, float]  # per signal, Pearson: 1 = moves with the source
    mean_abs_difference: dict[str, float]  # per signal, inter-ocular units: includes constant shape offsets
    blink_agreement: float
    dynamic_nme: float
    frames: int

    def to_dict(self) -> dict:
        return {"correlation": self.correlation, "mean_abs_difference": self.mean_abs_difference,
                "blink_agreement": self.blink_agreement, "dynamic_nme": self.dynamic_nme, "frames": self.frames}


def expression_scores(source: np.ndarray, swap: np.ndarray) -> ExpressionScores:
    """Clip-level expression scores from (N, 68, 2) source and swap landmarks, frame for frame.

    For video, give landmarks in each frame's aligned crop (the source's alignment for both), so the
    head's own motion cancels out of the dynamic NME. Blinks count either eye.
    """
    source, swap = np.asarray(source, np.float64), np.asarray(swap, np.float64)
    if source.shape != swap.shape or source.ndim != 3 or len(source) < 2:
        raise ValueError(f"need two equal (N>=2, 68, 2) landmark series, got {source.shape} and {swap.shape}")
    s, w = expression_signals(source), expression_signals(swap)
    correlation = {name: pearson(s[:, i], w[:, i]) for i, name in enumerate(SIGNALS)}
    difference = {name: float(np.abs(s[:, i] - w[:, i]).mean()) for i, name in enumerate(SIGNALS)}
    blinks = blink_agreement(closed_eyes(s[:, 2]) | closed_eyes(s[:, 3]), closed_eyes(w[:, 2]) | closed_eyes(w[:, 3]))
    return ExpressionScores(correlation, difference, blinks, dynamic_nme(source, swap), len(source))
