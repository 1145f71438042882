"""The baseline of the benchmarks: faceswap's "original" deepfakes autoencoder, scaled so its bottleneck
stays 4x4, with the classic training step (L1 + MSE, Adam) on our real-data + augmentation pipeline."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from swapface.train.augment import augment
from swapface.train.loop import Trainer


class _Upscale(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout * 4, 3, padding=1), nn.LeakyReLU(0.1), nn.PixelShuffle(2))


class ClassicAutoencoder(nn.Module):
    """Encoder conv 128-256-512-1024 k5 s2 (+1024 per doubling above 64 px), dense 1024, dense 4x4x1024,
    upscale to 8x8x512; decoders upscale 256-128-64 (+32, 16 ... above 64 px), conv k5 to RGB."""

    def __init__(self, resolution: int) -> None:
        super().__init__()
        extra = int(math.log2(resolution // 64))
        enc, cin = [], 3
        for width in [128, 256, 512, 1024] + [1024] * extra:
            enc += [nn.Conv2d(cin, width, 5, 2, 2), nn.LeakyReLU(0.1)]
            cin = width
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(1024 * 16, 1024), nn.Linear(1024, 1024 * 16),
                                     nn.Unflatten(1, (1024, 4, 4)), _Upscale(1024, 512))
        widths = [256, 128, 64] + [max(64 >> (i + 1), 8) for i in range(extra)]

        def decoder() -> nn.Sequential:
            layers, cin = [], 512
            for width in widths:
                layers.append(_Upscale(cin, width))
                cin = width
            return nn.Sequential(*layers, nn.Conv2d(cin, 3, 5, padding=2), nn.Sigmoid())

        self.decoder_a, self.decoder_b = decoder(), decoder()

    def swap(self, x: torch.Tensor, to: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Like SwapAutoencoder.swap: faces through decoder `to`; the classic model has no mask (all ones)."""
        rgb = (self.decoder_a if to == "a" else self.decoder_b)(self.encoder(x))
        return rgb, torch.ones_like(rgb[:, :1])

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(torch.cat([x_a, x_b]))
        z_a, z_b = z.split([len(x_a), len(x_b)])
        return self.decoder_a(z_a), self.decoder_b(z_b)


def baseline_step(trainer: Trainer, model: ClassicAutoencoder, optimizer: torch.optim.Optimizer,
                  dtype: torch.dtype | None = None) -> Callable[[], torch.Tensor]:
    """A classic training step (L1 + MSE, Adam) on batches from our data + augmentation pipeline."""
    def step() -> torch.Tensor:
        batches = []
        for name in "ab":
            images, masks, weights = trainer.faces[name].batch(trainer.samplers[name].next(trainer.options.batch_size),
                                                             trainer.options.priority_weight)
            batches.append(augment(images, masks, weights, trainer.options.augment, trainer.augment_generator))
        with torch.autocast(trainer.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out_a, out_b = model(batches[0][0], batches[1][0])
        pairs = ((out_a.float(), batches[0][1]), (out_b.float(), batches[1][1]))
        loss = sum(F.l1_loss(out, target) + F.mse_loss(out, target) for out, target in pairs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()
    return step
