"""A small landmark regressor: face crop -> 68 iBUG points. Trained alongside the swap model on the
facesets' own crops and stored landmarks (no outside weights), it lets training score a swap's
expression (train/losses.py: expression_loss) where dlib, which is not differentiable, cannot."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 64  # crops are resized to this: expression lives in coarse geometry, and it keeps the net cheap


class LandmarkRegressor(nn.Module):
    """Four stride-2 conv stages (64 -> 4 px) and a linear head; points come out in [0, 1] crop units."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True),
                       nn.Conv2d(out, out, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True)]
            channels = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels * (INPUT_SIZE // 16) ** 2, 68 * 2)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B,3,R,R) RGB in [0,1] -> (B,68,2) points as fractions of the crop side."""
        if x.shape[-1] != INPUT_SIZE:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True, align_corners=False)
        return self.head(self.body(x * 2 - 1).flatten(1)).view(len(x), 68, 2)
