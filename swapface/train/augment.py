"""Batched augmentation on the training device, so a GPU is never starved by CPU-side image work.

Targets get a flip, a small random affine and colour jitter (their mask and loss weights follow the
geometry); the encoder's input is additionally the classic deepfakes random warp of the target: a
smooth random displacement field, which forces the model to learn faces rather than pixel copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentOptions:
    flip: float = 0.5  # probability of a horizontal flip
    rotate: float = 10.0  # degrees, +-
    scale: float = 0.05  # relative, +-
    shift: float = 0.05  # fraction of the crop side, +-
    warp: float = 0.04  # std of the warp's control-point offsets, in [-1, 1] grid units
    warp_points: int = 5  # control points per side of the warp grid
    brightness: float = 0.08  # additive, +-
    contrast: float = 0.1  # relative, +-
    saturation: float = 0.1  # relative, +-


def _uniform(n: int, amount: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=gen, device=device) * 2 - 1) * amount


def affine_grids(n: int, size: int, options: AugmentOptions, gen: torch.Generator,
                 device: torch.device) -> torch.Tensor:
    """Sampling grids (n, size, size, 2) of a random flip + rotation + scale + shift each."""
    angle = _uniform(n, math.radians(options.rotate), gen, device)
    scale = 1 + _uniform(n, options.scale, gen, device)
    flip = torch.where(torch.rand(n, generator=gen, device=device) < options.flip, -1.0, 1.0)
    shift = _uniform(2 * n, options.shift * 2, gen, device).view(n, 2)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                         torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    return F.affine_grid(theta, [n, 1, size, size], align_corners=False)


def warp_grids(n: int, size: int, options: AugmentOptions, gen: torch.Generator,
               device: torch.device) -> torch.Tensor:
    """Identity grids plus a smooth random displacement (control points upsampled bicubically)."""
    theta = torch.eye(2, 3, device=device).expand(n, 2, 3)
    base = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
    points = options.warp_points
    offsets = torch.randn(n, 2, points, points, generator=gen, device=device) * options.warp
    offsets = F.interpolate(offsets, size=(size, size), mode="bicubic", align_corners=True)
    return base + offsets.permute(0, 2, 3, 1)


def colour_jitter(rgb: torch.Tensor, options: AugmentOptions, gen: torch.Generator) -> torch.Tensor:
    n, device = len(rgb), rgb.device
    grey = rgb.mean(1, keepdim=True)
    saturation = 1 + _uniform(n, options.saturation, gen, device).view(n, 1, 1, 1)
    rgb = grey + (rgb - grey) * saturation
    mean = rgb.mean((1, 2, 3), keepdim=True)
    contrast = 1 + _uniform(n, options.contrast, gen, device).view(n, 1, 1, 1)
    brightness = _uniform(n, options.brightness, gen, device).view(n, 1, 1, 1)
    return ((rgb - mean) * contrast + mean + brightness).clamp(0, 1)


def augment(images: torch.Tensor, masks: torch.Tensor, weights: torch.Tensor, options: AugmentOptions,
            gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(warped input, target, target mask, target loss weights) from a float batch in [0, 1].

    images (B,3,R,R), masks and weights (B,1,R,R). One grid_sample moves image, mask and weights
    together; the warp is a second grid_sample of the target only.
    """
    n, _, size, _ = images.shape
    grid = affine_grids(n, size, options, gen, images.device)
    moved = F.grid_sample(torch.cat([images, masks, weights], 1), grid, mode="bilinear",
                          padding_mode="reflection", align_corners=False)
    target = colour_jitter(moved[:, :3], options, gen)
    warped = F.grid_sample(target, warp_grids(n, size, options, gen, images.device), mode="bilinear",
                           padding_mode="reflection", align_corners=False)
    return warped, target, moved[:, 3:4], moved[:, 4:5]
