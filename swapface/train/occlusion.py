"""Training the occlusion mask network (swapface.faces.occlusion) on real faces with synthetic occluders.

Faces: the largest face of every Nth frame of the given clips, found by the MediaPipe backend (its
478-point oval is the label's face region), cropped at OCCLUSION_SIZE with every coverage and a random
similarity jitter, so the network works on any swap model's crops. Occluders: `occluders.occlude`,
new ones at every step. Label: face oval minus occluders. A few clips are kept apart to score it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from swapface.errors import InputError
from swapface.faces import AlignSpec, alignment_matrix, crop_face, make_backend, transform_points
from swapface.faces.align import COVERAGES
from swapface.faces.masks import dense_face_mask
from swapface.faces.occlusion import OCCLUSION_SIZE, OcclusionNet, read_weights
from swapface.media import open_media
from swapface.modeldir import save_tensors
from swapface.train.occluders import occlude


@dataclass(frozen=True)
class OcclusionTrainOptions:
    every: int = 8  # frame step through each clip
    per_clip: int = 40  # faces per clip at most
    variants: int = 4  # jittered crops per face
    batch_size: int = 24
    lr: float = 2e-3
    minutes: float = 30.0
    seed: int = 0
    init: Path | None = None  # weights to start from (e.g. the shipped ones) instead of random ones
    precision: str = "fp32"  # one of TRAIN_PRECISIONS; bf16: autocast, 2.5x the steps per second on a CPU with AMX


def _jitter(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random similarity about the crop centre (3x3): scale +-10%, roll +-10 degrees, shift +-4%."""
    s, a = rng.uniform(0.9, 1.1), math.radians(rng.uniform(-10, 10))
    c = size / 2
    shift = rng.uniform(-0.04, 0.04, 2) * size
    rotation = s * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return np.vstack([np.hstack([rotation, (np.array([c, c]) - rotation @ [c, c] + shift)[:, None]]), [0, 0, 1]])


def face_crops(clips: list[Path], options: OcclusionTrainOptions, rng: np.random.Generator,
               progress: Callable[[str], None] = print) -> tuple[np.ndarray, np.ndarray]:
    """(N, S, S, 3) uint8 crops and (N, S, S) float32 face-oval masks from the clips' largest faces."""
    backend = make_backend("mediapipe")
    crops, ovals = [], []
    for clip in clips:
        found = 0
        for frame in open_media(clip):
            if frame.index % options.every:
                continue
            faces = [f for f in backend.detect(frame.image) if f.dense is not None]
            if not faces:
                continue
            face = max(faces, key=lambda f: f.size)
            for _ in range(options.variants):
                coverage = list(COVERAGES)[rng.integers(len(COVERAGES))]
                matrix = alignment_matrix(face.landmarks, AlignSpec(OCCLUSION_SIZE, coverage))
                matrix = (_jitter(rng, OCCLUSION_SIZE) @ np.vstack([matrix, [0, 0, 1]]))[:2]
                crops.append(crop_face(frame.image, matrix, OCCLUSION_SIZE))
                ovals.append(dense_face_mask(transform_points(face.dense, matrix), (OCCLUSION_SIZE,) * 2))
            found += 1
            if found >= options.per_clip:
                break
        progress(f"{clip.name}: {found} faces")
    if not crops:
        raise InputError(", ".join(str(c) for c in clips), "no faces found for occlusion training")
    return np.stack(crops), np.stack(ovals)


def _colour_jitter(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    out = image.astype(np.float32) * rng.uniform(0.75, 1.25) + rng.uniform(-20, 20, 3)
    if rng.random() < 0.2:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5))
    return np.clip(out, 0, 255).astype(np.uint8)


def make_batch(rng: np.random.Generator, crops: np.ndarray, ovals: np.ndarray, size: int,
               clean: float = 0.25) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inputs (B, S, S, 3) uint8, labels "visible face", occluder masks and face ovals (B, S, S)."""
    images, labels, covers, faces = [], [], [], []
    for i in rng.integers(0, len(crops), size):
        face, oval = crops[i], ovals[i]
        if rng.random() < 0.5:
            face, oval = face[:, ::-1], oval[:, ::-1]
        face, oval = np.ascontiguousarray(face), np.ascontiguousarray(oval)
        covered = np.zeros_like(oval)
        if rng.random() >= clean:
            face, covered = occlude(rng, face, oval)
        images.append(_colour_jitter(rng, face))
        labels.append((oval > 0.5) * (1 - covered))
        covers.append(covered)
        faces.append(oval)
    return np.stack(images), np.stack(labels).astype(np.float32), np.stack(covers), np.stack(faces)


OCCLUDER_WEIGHT = 4.0  # per-pixel loss weight where an occluder covers the face: the part that matters


def _loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    prob = torch.sigmoid(logits)
    dice = 1 - (2 * (prob * target).sum((1, 2, 3)) + 1) / (prob.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return F.binary_cross_entropy_with_logits(logits, target, weight) + dice.mean()


def occluded_iou(visible: np.ndarray, oval: np.ndarray, covered: np.ndarray) -> float:
    """IoU of the occluded face pixels the mask implies (oval, not visible) against the true ones."""
    predicted = (oval > 0.5) & (visible < 0.5)
    truth = (oval > 0.5) & (covered > 0.5)
    union = (predicted | truth).sum()
    return float((predicted & truth).sum() / union) if union else 1.0


def train_occlusion(train_clips: list[Path], val_clips: list[Path], output: Path,
                    options: OcclusionTrainOptions = OcclusionTrainOptions(),
                    progress: Callable[[str], None] = print) -> dict[str, float]:
    """Train for `options.minutes` (lr decaying to 0), keep the weights that score best on the held-out
    clips (occluded-region IoU), write them to `output` (safetensors, fp16). Returns the scores."""
    rng = np.random.default_rng(options.seed)
    torch.manual_seed(options.seed)
    crops, ovals = face_crops(train_clips, options, rng, progress)
    val_crops, val_ovals = face_crops(val_clips, OcclusionTrainOptions(every=10, per_clip=16, variants=2), rng,
                                      progress)
    val_rng = np.random.default_rng(1234)
    val = make_batch(val_rng, val_crops, val_ovals, len(val_crops) * 2, clean=0.0)
    net = OcclusionNet()
    if options.init is not None:
        net.load_state_dict(read_weights(options.init))
    optimiser = torch.optim.AdamW(net.parameters(), lr=options.lr, weight_decay=1e-4)
    start = time.monotonic()
    deadline = start + options.minutes * 60
    best = {"iou": -1.0}
    step = 0
    while time.monotonic() < deadline:
        images, labels, covers, faces = make_batch(rng, crops, ovals, options.batch_size)
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
        y = torch.from_numpy(labels)[:, None]
        weight = 1 + (OCCLUDER_WEIGHT - 1) * torch.from_numpy(covers * (faces > 0.5))[:, None]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=options.precision == "bf16"):
            logits = net(x)
        loss = _loss(logits.float(), y, weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        for group in optimiser.param_groups:  # cosine decay over the time budget
            group["lr"] = options.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (time.monotonic() - start)
                                                                         / (deadline - start))))
        optimiser.step()
        step += 1
        if step % 250 == 0:
            scores = evaluate(net, *val)
            progress(f"step {step}: loss {loss.item():.3f}, held-out occluded IoU {scores['iou']:.3f}, "
                     f"visible IoU {scores['visible_iou']:.3f}")
            if scores["iou"] > best["iou"]:
                best = {**scores, "step": step}
                save_tensors(output, {k: v.half() if v.is_floating_point() else v
                                      for k, v in net.state_dict().items()},
                             {"step": str(step), "iou": f"{scores['iou']:.4f}"})
    return best


@torch.no_grad()
def evaluate(net: OcclusionNet, images: np.ndarray, labels: np.ndarray, covers: np.ndarray, ovals: np.ndarray
             ) -> dict[str, float]:
    was = net.training
    net.eval()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    visible = torch.sigmoid(torch.cat([net(x[i:i + 64]) for i in range(0, len(x), 64)]))[:, 0].numpy()
    net.train(was)
    ious = [occluded_iou(v, o, c) for v, o, c in zip(visible, ovals, covers, strict=True)]
    inter = ((visible > 0.5) & (labels > 0.5)).sum()
    union = ((visible > 0.5) | (labels > 0.5)).sum()
    return {"iou": float(np.mean(ious)), "visible_iou": float(inter / max(union, 1))}
