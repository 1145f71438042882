"""Discriminators: a PatchGAN that scores overlapping patches as real or generated, which sharpens texture
that pixel losses blur away; and a code discriminator that tells from the latent whose face it was."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """Three stride-2 4x4 convs then a 1-channel conv per head: one logit per ~70 px patch (at 256 px).

    With one head per identity it is conditional: a face is judged as a real face of the identity it
    claims to be, so a swap drawn as B is pushed toward real B faces, not only toward any real face."""

    def __init__(self, width: int = 64, layers: int = 3, heads: int = 1) -> None:
        super().__init__()
        # Spectral norm on every conv, no normalisation layers: a discriminator whose slope is bounded gives
        # the decoders gradients toward real texture rather than toward whatever patterns it over-reacts to
        # (Miyato et al. 2018; Real-ESRGAN's discriminator for the same artefacts).
        sn = nn.utils.parametrizations.spectral_norm
        blocks: list[nn.Module] = [sn(nn.Conv2d(3, width, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
        channels = width
        for i in range(1, layers):
            out = width * min(2**i, 8)
            blocks += [sn(nn.Conv2d(channels, out, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
            channels = out
        blocks += [sn(nn.Conv2d(channels, channels, 3, 1, 1)), nn.LeakyReLU(0.2, inplace=True),
                   sn(nn.Conv2d(channels, heads, 3, 1, 1))]
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor, claims: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B,3,H,W) in [0,1]; claims: (B,) the head (identity) each face is judged by, with several heads."""
        logits = self.net(x * 2 - 1)
        if claims is None:
            return logits
        return logits[torch.arange(len(x), device=x.device), claims].unsqueeze(1)


class CodeDiscriminator(nn.Module):
    """Latent mean (B,C,S,S) -> one logit per face: "this code came from a face of B, not of A".

    The encoder is trained to fool it (DeepFaceLab's "true face power"), so the latent keeps pose,
    expression and light but not whose face it was: the swap then feeds each decoder codes like the ones
    it learned from. Convs at the latent's own size, then a dense layer over all cells, since identity is
    in the arrangement as much as in any one cell. Spectral norm for the same bounded slope as above."""

    def __init__(self, channels: int, side: int, width: int = 128) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.net = nn.Sequential(
            sn(nn.Conv2d(channels, width, 3, 1, 1)), nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(width, width, 3, 1, 1)), nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(), sn(nn.Linear(width * side * side, 1)))

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.net(code.float()).squeeze(1)
