"""A trained model on held-out faces: reconstructions (A->A, B->B) and swaps (A->B, B->A).

Reconstructions get PSNR and SSIM: a model that cannot redraw faces it was not trained on, through
their own decoder, will not draw convincing swaps either. Every output also gets the swap protocol's
numbers: identity distance to the person it should show and to the other one, landmark NME against its
input, how its expression moves with the input's (expression.py: per-signal correlation, blinks, dynamic
NME), its sharpness against real faces of the person it shows, and its light per skin region against the
input. Faces are compared in the crops the model works on, so this needs no video and runs in seconds.

This is the one scorer: `swapface eval --model`, bench/quality.py and training's held-out log
(train/evaluate.py) all call `score_direction`, and `headline` names the numbers they print and log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from swapface.devices import resolve_device
from swapface.errors import InputError
from swapface.eval.expression import ExpressionScores, expression_scores
from swapface.eval.metrics import (
    Summary,
    finite_mean,
    identity_distance,
    landmark_nme,
    psnr,
    region_light_difference,
    sharpness_ratio,
    ssim,
    summarise,
)
from swapface.faces import DEFAULT_BACKEND, FaceBackend, make_backend
from swapface.faces.masks import hull_mask
from swapface.faceset.store import Faceset

SHOWN_FACES = 4  # input | output pairs kept for the report, per direction
ANALYSIS_SIZE = 256  # crops are enlarged to this before landmarks and embeddings: dlib wants faces of 80 px+


@dataclass
class HeldOutFaces:
    """Crops of one identity at the model's resolution, and that identity's mean embedding."""

    identity: str
    faceset: str
    crops: np.ndarray  # (N, R, R, 3) uint8
    crop_landmarks: np.ndarray  # (N, 68, 2) in crop pixels at resolution R
    mean_embedding: np.ndarray


@dataclass
class DirectionScores:
    """Per-face numbers of one direction, e.g. "a->a" (reconstruction) or "a->b" (swap).

    `d_target` is the identity distance to the person the output should show, `d_original` to the
    other one (NaN when only one identity's faces were given); PSNR and SSIM only for reconstructions.
    """

    source: str
    to: str
    faceset: str
    d_target: list[float] = field(default_factory=list)
    d_original: list[float] = field(default_factory=list)
    nme: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    pooled_psnr: float = math.nan  # PSNR of all faces' pooled error: the usual single "N dB" figure
    expression: ExpressionScores | None = None  # over the held-out faces in order (None: fewer than 2)
    sharpness: float = math.nan  # high-frequency energy against real faces of identity `to`, same size
    light: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # region -> per face (dL, d(a,b))
    examples: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (input, output) RGB uint8

    @property
    def name(self) -> str:
        return f"{self.source}->{self.to}"

    @property
    def is_reconstruction(self) -> bool:
        return self.source == self.to

    @property
    def closer_to_target(self) -> float:
        pairs = [(t, o) for t, o in zip(self.d_target, self.d_original, strict=True) if math.isfinite(t + o)]
        return float(np.mean([t < o for t, o in pairs])) if pairs else math.nan

    def summaries(self) -> dict[str, Summary]:
        result = {"d_target": summarise(self.d_target), "d_original": summarise(self.d_original, True),
                  "nme": summarise(self.nme)}
        if self.is_reconstruction:
            result["psnr"] = summarise(self.psnr, higher_is_better=True)
            result["ssim"] = summarise(self.ssim, higher_is_better=True)
        return result

    def light_summary(self) -> dict[str, dict[str, float]]:
        """Per skin region: mean |brightness step| and mean colour step over the faces (LAB levels)."""
        return {region: {"brightness": finite_mean(np.abs([v[0] for v in values])),
                         "colour": finite_mean([v[1] for v in values])}
                for region, values in self.light.items()}


def headline(scores: DirectionScores) -> dict[str, float]:
    """The numbers a run is judged by, flat, in one place: what training logs, the bench prints and
    eval.json's `headline` holds (NaN where not measured)."""
    expression = scores.expression
    correlation = expression.correlation if expression else {}
    light = scores.light_summary()
    numbers = {
        "closer": scores.closer_to_target,
        "d_target": finite_mean(scores.d_target) if scores.d_target else math.nan,
        "d_other": finite_mean(scores.d_original) if scores.d_original else math.nan,
        "nme": finite_mean(scores.nme) if scores.nme else math.nan,
        "dyn_nme": expression.dynamic_nme if expression else math.nan,
        "mouth_corr": correlation.get("mouth_open", math.nan),
        "eye_corr": finite_mean([correlation.get("eye_left", math.nan), correlation.get("eye_right", math.nan)]),
        "brow_corr": finite_mean([correlation.get("brow_left", math.nan), correlation.get("brow_right", math.nan)]),
        "blink": expression.blink_agreement if expression else math.nan,
        "sharpness": scores.sharpness,
        "light_brightness": finite_mean([r["brightness"] for r in light.values()]) if light else math.nan,
        "light_colour": finite_mean([r["colour"] for r in light.values()]) if light else math.nan,
    }
    if scores.is_reconstruction:
        numbers.update(psnr=scores.pooled_psnr, ssim=float(np.mean(scores.ssim)) if scores.ssim else math.nan)
    return numbers


def held_out_faces(path: Path, identity: str, resolution: int, coverage: str, max_faces: int) -> HeldOutFaces:
    """Up to `max_faces` crops of a faceset, evenly spread over it, resized to the model's resolution.
    The crops must frame the face as the model's training crops did."""
    with Faceset.open(path) as faceset:
        if faceset.spec.coverage != coverage:
            raise InputError(path, f"crops have '{faceset.spec.coverage}' coverage but the model was trained "
                                   f"on '{coverage}' crops")
        records = faceset.records()
        if not records:
            raise InputError(path, "faceset holds no faces")
        picks = np.unique(np.linspace(0, len(records) - 1, min(max_faces, len(records))).round().astype(int))
        crops, landmarks = [], []
        for index in picks:
            crop = faceset.load_image(records[index])
            scale = resolution / crop.shape[0]
            if scale != 1:
                interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
                crop = cv2.resize(crop, (resolution, resolution), interpolation=interpolation)
            crops.append(crop)
            landmarks.append(records[index].crop_landmarks * scale)
        mean_embedding = np.mean([r.embedding for r in records], 0)
    return HeldOutFaces(identity, str(path), np.stack(crops), np.stack(landmarks), mean_embedding)


def run_model(model, crops: np.ndarray, to: str, batch_size: int, device: str, autocast=None) -> np.ndarray:
    """Crops (N, R, R, 3) uint8 through the encoder and decoder `to`, back to uint8 (under `autocast`,
    a torch.autocast, when given: training scores its model in the precision it trains in)."""
    import contextlib

    import torch

    outputs = []
    for start in range(0, len(crops), batch_size):
        batch = torch.from_numpy(crops[start:start + batch_size]).to(device).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad(), autocast or contextlib.nullcontext():
            rgb, _ = model.swap(batch, to=to)
        outputs.append((rgb.float().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(outputs)


def scoring_backend() -> FaceBackend:
    """The face backend every held-out score fits its landmarks with (and embeds with: dlib's ResNet in every
    backend). One for all callers: the NME and expression numbers depend on whose landmark fit reads them, so
    numbers from different backends do not compare."""
    return make_backend(DEFAULT_BACKEND)


def fit_in_crop(backend: FaceBackend, crop: np.ndarray, crop_landmarks: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks re-fitted on a crop (enlarged for dlib) in the box around `crop_landmarks` (where the face
    is known to be), and the enlarged crop they belong to."""
    scale = ANALYSIS_SIZE / crop.shape[0]
    large = cv2.resize(crop, (ANALYSIS_SIZE, ANALYSIS_SIZE), interpolation=cv2.INTER_CUBIC)
    points = crop_landmarks * scale
    bbox = np.concatenate([points.min(0), points.max(0)])
    return backend.landmarks(large, bbox), large


def _hulls(faces: HeldOutFaces) -> list[np.ndarray]:
    side = faces.crops.shape[1]
    return [hull_mask(points, (side, side)) for points in faces.crop_landmarks]


def score_direction(model, faces: HeldOutFaces, to: str, references: dict[str, np.ndarray],
                    backend: FaceBackend, batch_size: int = 16, device: str = "cpu",
                    real_faces: HeldOutFaces | None = None, autocast=None,
                    outputs: np.ndarray | None = None) -> DirectionScores:
    """Run one identity's held-out faces through decoder `to` and score every output.

    Sharpness compares the outputs with `real_faces` (crops of identity `to` at the same size; by default
    `faces` themselves for a reconstruction, unmeasured for a swap without them). Landmarks of input and
    output are both fitted by `backend` on crops enlarged to ANALYSIS_SIZE (dlib wants faces of 80 px and
    more), so the NME and the expression scores compare like with like. `outputs` (N, R, R, 3) uint8 scores
    outputs made elsewhere (e.g. on a GPU machine without dlib, bench/gpu.sh) instead of running `model`."""
    if outputs is None:
        outputs = run_model(model, faces.crops, to, batch_size, device, autocast)
    elif outputs.shape != faces.crops.shape:
        raise ValueError(f"outputs of shape {outputs.shape} do not match the {faces.crops.shape} held-out crops")
    scores = DirectionScores(faces.identity, to, faces.faceset)
    other = next((k for k in references if k != to), None)
    source_series, output_series = [], []
    # One box for every fit, from the mean landmarks: aligned crops hold the face in the same place, and a
    # box drawn around each source's own landmarks would pass its mouth opening to a blurry output's fit
    # (dlib starts from its mean shape scaled to the box).
    hint = faces.crop_landmarks.mean(0)
    for crop, output, landmarks in zip(faces.crops, outputs, faces.crop_landmarks, strict=True):
        source_points, _ = fit_in_crop(backend, crop, hint)
        output_points, large = fit_in_crop(backend, output, hint)
        source_series.append(source_points)
        output_series.append(output_points)
        scores.nme.append(landmark_nme(output_points, source_points))
        embedding = backend.embed(large, output_points)
        scores.d_target.append(identity_distance(embedding, references[to]) if to in references else math.nan)
        scores.d_original.append(identity_distance(embedding, references[other]) if other else math.nan)
        for region, step in region_light_difference(output, crop, landmarks).items():
            scores.light.setdefault(region, []).append(step)
    if len(source_series) >= 2:
        scores.expression = expression_scores(np.stack(source_series), np.stack(output_series))
    real = real_faces or (faces if to == faces.identity else None)
    if real is not None:
        scores.sharpness = sharpness_ratio(list(outputs), _hulls(faces), list(real.crops), _hulls(real))
    if scores.is_reconstruction:
        scores.psnr = [psnr(a, b) for a, b in zip(outputs, faces.crops, strict=True)]
        scores.ssim = [ssim(a, b) for a, b in zip(outputs, faces.crops, strict=True)]
        scores.pooled_psnr = psnr(outputs, faces.crops)
    shown = np.unique(np.linspace(0, len(outputs) - 1, min(SHOWN_FACES, len(outputs))).round().astype(int))
    scores.examples = [(faces.crops[i], outputs[i]) for i in shown]
    return scores


def held_out_scores(model_dir: Path, held_out: dict[str, Path], max_faces: int = 64, batch_size: int = 16,
                    device: str = "cpu", backend: FaceBackend | None = None,
                    references: dict[str, np.ndarray] | None = None) -> list[DirectionScores]:
    """Reconstructions of each given identity ("a", "b"), and swaps between them when both are given.

    Identity distances are to `references` (e.g. the mean embeddings of the training faces, as the
    quality protocol asks), by default to the mean of each identity's held-out faces."""
    # torch is imported only here: evaluating a swapped video needs no model and should start fast.
    from swapface.modeldir import load_model

    torch_device = resolve_device(device)  # "auto": cuda when present
    model, config = load_model(model_dir, device=torch_device)
    return score_model(model, config.resolution, config.coverage, held_out, max_faces, batch_size, str(torch_device),
                       backend, references)


def score_model(model, resolution: int, coverage: str, held_out: dict[str, Path], max_faces: int = 64,
                batch_size: int = 16, device: str = "cpu", backend: FaceBackend | None = None,
                references: dict[str, np.ndarray] | None = None) -> list[DirectionScores]:
    """held_out_scores for a model in hand: anything with `swap(x, to) -> (rgb, mask)` on `device`."""
    backend = backend or scoring_backend()
    faces = {k: held_out_faces(p, k, resolution, coverage, max_faces) for k, p in held_out.items()}
    references = references or {k: f.mean_embedding for k, f in faces.items()}
    return [score_direction(model, identity_faces, to, references, backend, batch_size, device, faces.get(to))
            for identity_faces in faces.values() for to in sorted(references)]
