"""Colour transfer: make the generated face's colours match the face it replaces, inside the mask.

Statistics are taken only where the mask is on, so background, hair and the crop's borders do not
pull the face's colour. Works on crops at the model's resolution (cheap at any frame size).
"""

from __future__ import annotations

import cv2
import numpy as np

COLOR_MODES = ("reinhard", "light", "histogram", "none")
MIN_MASK_PIXELS = 16
SHADING_SIGMA = 0.08  # of the crop's side: blurs features away, keeps the light's direction and falloff


def transfer_color(face: np.ndarray, target: np.ndarray, mask: np.ndarray, mode: str = "reinhard") -> np.ndarray:
    """Recolour `face` (RGB uint8) so that inside `mask` it has `target`'s colour statistics."""
    if mode == "none":
        return face
    inside = mask > 0.5
    if int(inside.sum()) < MIN_MASK_PIXELS:
        return face
    if mode == "histogram":
        return match_histograms(face, target, inside)
    if mode not in ("reinhard", "light"):
        raise ValueError(f"colour mode must be one of {', '.join(COLOR_MODES)}, got {mode!r}")
    src, dst = _to_lab(face), _to_lab(target)  # once: `light` is Reinhard then shading, both in L*a*b*
    out = _reinhard_lab(src, dst, inside)
    if mode == "light":
        out = _shading_lab(out, dst, inside)
    return _to_rgb(out)


def _to_lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _to_rgb(lab: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _reinhard_lab(src: np.ndarray, dst: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Reinhard et al. (2001): match mean and standard deviation per channel in CIE L*a*b*."""
    s_mean, s_std = src[inside].mean(0), src[inside].std(0)
    d_mean, d_std = dst[inside].mean(0), dst[inside].std(0)
    return (src - s_mean) * (d_std / np.maximum(s_std, 1e-3)) + d_mean


def match_histograms(face: np.ndarray, target: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Per-channel histogram matching (RGB): the face's value CDF is mapped onto the target's."""
    out = np.empty_like(face)
    for c in range(3):
        src_hist = np.bincount(face[..., c][inside], minlength=256).astype(np.float64)
        dst_hist = np.bincount(target[..., c][inside], minlength=256).astype(np.float64)
        # Each source value goes to the target quantile of its pixels' middle rank, so a value shared by
        # many pixels (e.g. clipped highlights) lands mid-way, not at the top of its range.
        src_cdf = (np.cumsum(src_hist) - src_hist / 2) / src_hist.sum()
        dst_cdf = (np.cumsum(dst_hist) - dst_hist / 2) / dst_hist.sum()
        lut = np.interp(src_cdf, dst_cdf, np.arange(256))
        out[..., c] = np.clip(lut + 0.5, 0, 255).astype(np.uint8)[face[..., c]]
    return out


def _masked_blur(channel: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of `channel` that only averages where `weight` is on (normalised convolution), so
    the background next to the face does not bleed into its edge."""
    num = cv2.GaussianBlur(channel * weight, (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    return num / np.maximum(den, 1e-3)


def _shading_lab(src: np.ndarray, dst: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Give the face the target's light: replace the face's large-scale lightness (L*, blurred well past
    the size of eyes and mouth) with the target's, keeping the face's own detail.

    A global transfer (Reinhard, histograms) matches the mean and spread but not where the light comes
    from: a face lit from the left pasted into a shot lit from the right keeps its own shadows."""
    sigma = SHADING_SIGMA * src.shape[0]
    weight = inside.astype(np.float32)
    shift = _masked_blur(dst[..., 0], weight, sigma) - _masked_blur(src[..., 0], weight, sigma)
    out = src.copy()
    out[..., 0] = np.clip(src[..., 0] + shift * weight, 0, 100)
    return out
