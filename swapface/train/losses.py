"""Reconstruction losses: face-masked L1 + SSIM with extra weight on eyes and mouth, the mask loss,
KL, and the hinge GAN terms. All computed in fp32 whatever the autocast precision."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from swapface.eval.expression import expression_signals

BACKGROUND_WEIGHT = 0.1  # outside the face hull the crop still counts, a little, so edges blend


def _gaussian_1d(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(t: torch.Tensor, window: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding ('same' size): 2 x 11 taps instead of 121."""
    channels, pad = t.shape[1], window // 2
    g = _gaussian_1d(window, sigma, t.device)
    t = F.conv2d(F.pad(t, [pad, pad, 0, 0], mode="reflect"), g.view(1, 1, 1, -1).expand(channels, 1, 1, window),
                 groups=channels)
    return F.conv2d(F.pad(t, [0, 0, pad, pad], mode="reflect"), g.view(1, 1, -1, 1).expand(channels, 1, window, 1),
                    groups=channels)


def ssim_map(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM (B,C,H,W) of images in [0, 1] with a Gaussian window; all five local moments in
    one blur call."""
    c = x.shape[1]
    mu_x, mu_y, xx, yy, xy = _blur(torch.cat([x, y, x * x, y * y, x * y], 1), window, sigma).split(c, dim=1)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
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


def code_identity_loss(logits: torch.Tensor, is_b: torch.Tensor) -> torch.Tensor:
    """The code discriminator's loss for telling A's codes (0) from B's (1); with the labels flipped, the
    encoder's loss for fooling it (each side pushed toward the other, so neither side's codes give it away)."""
    return F.binary_cross_entropy_with_logits(logits.float(), is_b)


def expression_loss(swap_points: torch.Tensor, source_points: torch.Tensor, source_mean: torch.Tensor,
                    target_mean: torch.Tensor) -> torch.Tensor:
    """How far a swap's expression is from its source's, apart from face shape.

    Points (B,68,2) (any unit: the signals are ratios); means (6,) are each identity's mean expression
    signals. The swap should differ from the target's usual face as the source differs from the
    source's: a mouth opened 0.1 inter-ocular distances wider than A's average opens B's mouth 0.1 wider
    than B's average. So a constant difference in shape between the two people costs nothing."""
    swap = expression_signals(swap_points.float()) - target_mean
    source = expression_signals(source_points.float()) - source_mean
    return (swap - source).abs().mean()


def landmark_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between predicted and true landmarks (both in crop fractions)."""
    return (predicted.float() - target).abs().mean()
