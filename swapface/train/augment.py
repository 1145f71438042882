"""Batched augmentation on the training device, so a GPU is never starved by CPU-side image work.

Targets get a flip, a small random affine and colour jitter (their mask and loss weights follow the
geometry); the encoder's input is additionally the classic deepfakes random warp of the target: a
smooth random displacement field, which forces the model to learn faces rather than pixel copies.
Optionally, a face is trained in the colours of a face of the other identity (`transfer_colours`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from swapface.train.options import AugmentOptions


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

    images (B,3,R,R), masks and weights (B,1,R,R). One affine grid moves image, mask and weights together
    (the faces resampled as `options.resample` says, mask and weights bilinearly: smooth, and no overshoot
    past their ranges); the warp is a second resampling of the target only.
    """
    n, _, size, _ = images.shape
    grid = affine_grids(n, size, options, gen, images.device)
    moved = F.grid_sample(images, grid, mode=options.resample, padding_mode="reflection", align_corners=False)
    maps = F.grid_sample(torch.cat([masks, weights], 1), grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)
    target = colour_jitter(moved, options, gen)  # clamps to [0, 1], bicubic's overshoot included
    warped = F.grid_sample(target, warp_grids(n, size, options, gen, images.device), mode=options.resample,
                           padding_mode="reflection", align_corners=False).clamp(0, 1)
    return warped, target, maps[:, :1], maps[:, 1:2]


# YCbCr (ITU-R BT.601, full range): one luma and two chroma axes, close to decorrelated on skin, so matching
# each axis's mean and spread is Reinhard's colour transfer. It stands in for the L*a*b* that the swap's
# `--color reinhard` uses (OpenCV, on the CPU) because here it is one matrix on the training device.
YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
RGB_FROM_YCBCR = torch.linalg.inv(YCBCR)
MIN_FACE_PIXELS = 16
MAX_SPREAD_RATIO = 2.0  # caps how far a face's contrast is stretched or squeezed (a near-flat face, a dark shot)


class ColourMoments(NamedTuple):
    """Per face of a batch: mean and spread (N,3) of its YCbCr values inside its mask, and the mask's area (N,)."""

    mean: torch.Tensor
    spread: torch.Tensor
    area: torch.Tensor


def colour_moments(images: torch.Tensor, masks: torch.Tensor) -> ColourMoments:
    """The colour statistics of each face (N,3,R,R in [0, 1]) inside its mask (N,1,R,R)."""
    values = torch.einsum("ij,njhw->nihw", YCBCR.to(images.device, images.dtype), images)
    area = masks.sum((2, 3))
    mean = (values * masks).sum((2, 3)) / area.clamp_min(1.0)
    spread = (((values - mean[..., None, None]) ** 2 * masks).sum((2, 3)) / area.clamp_min(1.0)).sqrt()
    return ColourMoments(mean, spread, area[:, 0])


def transfer_colours(inputs: torch.Tensor, targets: torch.Tensor, own: ColourMoments, others: ColourMoments,
                     chance: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepFaceLab's `ct_mode`: with probability `chance`, recolour a face (its input and target alike) so that
    inside its mask it has the colour statistics of a random face of the other identity.

    Each decoder then learns to draw its person in the light and colours of the other person's footage, the
    ones it meets when it swaps, and the colour it draws comes from the input; colour stops telling one
    person from the other. Images (N,3,R,R) in [0, 1]; `own` are the targets' moments, `others` the other
    identity's batch's (colour_moments)."""
    n, device = len(targets), targets.device
    chosen = torch.rand(n, generator=gen, device=device) < chance
    pick = torch.randint(len(others.mean), (n,), generator=gen, device=device)
    chosen &= (own.area >= MIN_FACE_PIXELS) & (others.area[pick] >= MIN_FACE_PIXELS)
    if not bool(chosen.any()):
        return inputs, targets
    ratio = (others.spread[pick] / own.spread.clamp_min(1e-3)).clamp(1 / MAX_SPREAD_RATIO, MAX_SPREAD_RATIO)
    scale = torch.where(chosen[:, None], ratio, torch.ones_like(ratio))
    shift = torch.where(chosen[:, None], others.mean[pick] - own.mean * scale, torch.zeros_like(own.mean))
    # y' = scale * y + shift in YCbCr is one affine map per image in RGB: rgb' = M^-1 diag(scale) M rgb + M^-1 shift
    to_ycbcr, back = YCBCR.to(device, targets.dtype), RGB_FROM_YCBCR.to(device, targets.dtype)
    matrix = back @ (scale[..., None] * to_ycbcr)
    offset = shift @ back.T

    def recolour(rgb: torch.Tensor) -> torch.Tensor:
        return (torch.einsum("nij,njhw->nihw", matrix, rgb) + offset[..., None, None]).clamp(0, 1)

    return recolour(inputs), recolour(targets)
