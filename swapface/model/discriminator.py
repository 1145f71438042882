"""PatchGAN discriminator: scores overlapping patches as real or generated, which sharpens texture
that pixel losses blur away."""

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
