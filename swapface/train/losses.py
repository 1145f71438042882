"""Reconstruction losses: face-masked L1 + SSIM with extra weight on eyes and mouth, the mask loss,
KL, and the hinge GAN terms. All computed in fp32 whatever the autocast precision."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

BACKGROUND_WEIGHT = 0.1  # outside the face hull the crop still counts, a little, so edges blend


@functools.lru_cache(maxsize=8)
def _gaussian_window(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()


def ssim_map(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM (B,3,H,W) of images in [0, 1], Gaussian window, 'same' padding."""
    w = _gaussian_window(window, sigma, x.device)
    pad = window // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(t, [pad] * 4, mode="reflect"), w, groups=3)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def pixel_weights(mask: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Loss weight per pixel: feature weights (eyes/mouth high) inside the hull, a little outside."""
    return features * (BACKGROUND_WEIGHT + (1 - BACKGROUND_WEIGHT) * mask)


def reconstruction_losses(rgb: torch.Tensor, mask: torch.Tensor, target: torch.Tensor, target_mask: torch.Tensor,
                          features: torch.Tensor) -> dict[str, torch.Tensor]:
    """Weighted L1, weighted (1 - SSIM) / 2 and the mask's L1 to the landmark hull."""
    rgb, mask = rgb.float(), mask.float()
    weights = pixel_weights(target_mask, features)
    norm = weights.sum() * 3
    l1 = ((rgb - target).abs() * weights).sum() / norm
    dssim = (((1 - ssim_map(rgb, target)) / 2) * weights).sum() / norm
    return {"l1": l1, "ssim": dssim, "mask": (mask - target_mask).abs().mean()}


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)), averaged over latent elements."""
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean()


def generator_gan_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.float().mean()


def discriminator_gan_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss."""
    return F.relu(1 - real_logits.float()).mean() + F.relu(1 + fake_logits.float()).mean()
