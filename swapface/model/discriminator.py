"""PatchGAN discriminator: scores overlapping patches as real or generated, which sharpens texture
that pixel losses blur away."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """Three stride-2 4x4 convs then a 1-channel conv: one logit per ~70 px patch (at 256 px)."""

    def __init__(self, width: int = 64, layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        channels = width
        for i in range(1, layers):
            out = width * min(2**i, 8)
            blocks += [nn.Conv2d(channels, out, 4, 2, 1), nn.GroupNorm(min(32, out // 4), out),
                       nn.LeakyReLU(0.2, inplace=True)]
            channels = out
        blocks += [nn.Conv2d(channels, channels, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                   nn.Conv2d(channels, 1, 3, 1, 1)]
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)
