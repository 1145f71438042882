"""Synthetic occluders for training the occlusion mask: objects, textures, skin-coloured shapes, hands,
microphones and hair strands pasted over face crops at random.

Textures come from the sample images that ship inside installed packages (scikit-image, matplotlib),
so training needs no download. `coffee` is kept out: tests paste it as an object never seen in training.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache

import cv2
import numpy as np

TEXTURE_IMAGES = ("brick", "grass", "gravel", "chelsea", "clock", "coins", "colorwheel", "hubble_deep_field",
                  "immunohistochemistry", "logo", "moon", "page", "retina", "rocket", "text", "checkerboard",
                  "horse")
MATPLOTLIB_IMAGES = ("logo2.png", "Minduka_Present_Blue_Pack.png")
HELD_OUT = "coffee"  # never a training texture


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.dtype != np.uint8:
        image = cv2.normalize(image.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, 2)
    return np.ascontiguousarray(image[..., :3])


@lru_cache(maxsize=1)
def textures() -> tuple[np.ndarray, ...]:
    """The texture bank: package sample images that load offline, as RGB uint8."""
    import matplotlib
    import skimage.data

    bank = []
    for name in TEXTURE_IMAGES:
        try:
            bank.append(_rgb(getattr(skimage.data, name)()))
        except Exception:  # noqa: BLE001 - an image this scikit-image cannot load offline is just skipped
            continue
    folder = os.path.join(matplotlib.get_data_path(), "sample_data")
    for name in MATPLOTLIB_IMAGES:
        image = cv2.imread(os.path.join(folder, name), cv2.IMREAD_COLOR)
        if image is not None:
            bank.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return tuple(bank)


def _texture_patch(rng: np.random.Generator, size: int, bank: tuple[np.ndarray, ...]) -> np.ndarray:
    image = bank[rng.integers(len(bank))]
    h, w = image.shape[:2]
    side = int(rng.integers(max(8, min(h, w) // 8), min(h, w) + 1))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    patch = cv2.resize(image[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    if rng.random() < 0.5:  # shift the colours so textures do not look like themselves every time
        patch = patch[..., rng.permutation(3)] * rng.uniform(0.6, 1.3) + rng.uniform(-40, 40, 3)
    return np.clip(patch, 0, 255)


def _skin(rng: np.random.Generator, face: np.ndarray, oval: np.ndarray) -> np.ndarray:
    """A skin colour near the face's own (hands in front of a face are the same person's, mostly)."""
    pixels = face[oval > 0.5]
    base = np.median(pixels, 0) if len(pixels) else np.array([200.0, 150, 120])
    return np.clip(base * rng.uniform(0.75, 1.2) + rng.normal(0, 12, 3), 0, 255)


def _shape(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """Alpha (uint8, size x size) of one shape, drawn at 4x and shrunk (soft, anti-aliased edges)."""
    big = size * 4
    canvas = np.zeros((big, big), np.uint8)
    cx, cy = rng.uniform(0.15, 0.85) * big, rng.uniform(0.35, 1.0) * big
    scale = rng.uniform(0.12, 0.45) * big
    angle = rng.uniform(0, 360)
    if kind == "ellipse":
        cv2.ellipse(canvas, (int(cx), int(cy)), (int(scale), int(scale * rng.uniform(0.3, 1.0))), angle, 0, 360, 255,
                    -1)
    elif kind == "polygon":
        n = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * math.pi, n))
        radii = scale * rng.uniform(0.4, 1.0, n)
        points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
        cv2.fillPoly(canvas, [points.astype(np.int32)], 255)
    elif kind == "bar":  # a pen, a finger, a cable, a microphone stand: a thick line from outside the crop
        end = np.array([cx, cy])
        start = end + scale * 3 * np.array([math.cos(math.radians(angle)), abs(math.sin(math.radians(angle)))])
        cv2.line(canvas, tuple(start.astype(int)), tuple(end.astype(int)), 255, int(scale * rng.uniform(0.15, 0.5)))
    elif kind == "hand":  # a palm and fingers
        cv2.ellipse(canvas, (int(cx), int(cy)), (int(scale * 0.6), int(scale * 0.75)), angle, 0, 360, 255, -1)
        for k in range(int(rng.integers(2, 6))):
            a = math.radians(angle - 90 + (k - 2) * rng.uniform(12, 22))
            tip = (cx + scale * 1.5 * math.cos(a), cy + scale * 1.5 * math.sin(a))
            cv2.line(canvas, (int(cx), int(cy)), (int(tip[0]), int(tip[1])), 255, max(4, int(scale * 0.22)))
    elif kind == "microphone":  # a ball on a handle
        radius = scale * 0.55
        cv2.circle(canvas, (int(cx), int(cy)), int(radius), 255, -1)
        a = math.radians(rng.uniform(45, 135))
        cv2.line(canvas, (int(cx), int(cy)), (int(cx + 4 * radius * math.cos(a)), int(cy + 4 * radius * math.sin(a))),
                 255, int(radius * 0.6))
    else:  # strands: hair or a cable, thin curves
        for _ in range(int(rng.integers(3, 15))):
            x0 = rng.uniform(0, big)
            xs = x0 + np.cumsum(rng.normal(0, big * 0.01, 40))
            ys = np.linspace(rng.uniform(-0.2, 0.3) * big, rng.uniform(0.4, 1.1) * big, 40)
            cv2.polylines(canvas, [np.stack([xs, ys], 1).astype(np.int32)], False, 255, int(rng.integers(4, 14)))
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)


KINDS = ("ellipse", "polygon", "bar", "hand", "microphone", "strands")
FILLS = ("texture", "skin", "solid")


def occlude(rng: np.random.Generator, face: np.ndarray, oval: np.ndarray, max_objects: int = 2
            ) -> tuple[np.ndarray, np.ndarray]:
    """Paste 0..max_objects random occluders over `face` (uint8 crop); returns the new crop and the
    occluder mask (float32, 1 where an occluder covers the pixel)."""
    size = face.shape[0]
    out = face.astype(np.float32)
    covered = np.zeros((size, size), np.float32)
    bank = textures()
    for _ in range(int(rng.integers(1, max_objects + 1))):
        kind = KINDS[rng.integers(len(KINDS))]
        alpha = _shape(rng, size, kind).astype(np.float32) / 255.0
        fill = "skin" if kind == "hand" and rng.random() < 0.8 else FILLS[rng.integers(len(FILLS))]
        if fill == "texture":
            colour = _texture_patch(rng, size, bank)
        elif fill == "skin":
            colour = np.broadcast_to(_skin(rng, face, oval), (size, size, 3)).astype(np.float32)
        else:
            colour = np.broadcast_to(rng.uniform(0, 255, 3), (size, size, 3)).astype(np.float32)
        # Shading and grain, so flat fills do not give themselves away by being flat.
        ramp = np.linspace(rng.uniform(0.7, 1.0), rng.uniform(1.0, 1.3), size, dtype=np.float32)
        shade = ramp[:, None] if rng.random() < 0.5 else ramp[None, :]
        colour = np.clip(colour * shade[..., None] + rng.normal(0, rng.uniform(0, 8), (size, size, 3)), 0, 255)
        out = out * (1 - alpha[..., None]) + colour * alpha[..., None]
        covered = np.maximum(covered, alpha)
    return np.clip(out, 0, 255).astype(np.uint8), (covered > 0.5).astype(np.float32)


def microphone_over_mouth(shape: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """Where a studio microphone before the mouth would be in a frame (68 landmarks of the face): a ball
    over mouth and chin, its handle going down out of the frame. The fixed test case of the occlusion
    benchmark and tests, on top of the random occluders training sees."""
    mask = np.zeros(shape, np.uint8)
    size = float((landmarks.max(0) - landmarks.min(0)).max())
    centre = (landmarks[57] * 0.6 + landmarks[8] * 0.4).astype(int)
    cv2.circle(mask, tuple(centre), int(size * 0.2), 1, -1)
    cv2.line(mask, tuple(centre), (int(centre[0] + size * 0.1), shape[0]), 1, int(size * 0.12))
    return mask.astype(bool)
