"""The swap autoencoder: one shared VAE encoder, one decoder per identity.

Built for GPU throughput: 3x3 convs with >= 32 channels (tensor-core friendly, channels_last),
no normalisation layers (bandwidth-bound and bf16-unfriendly; residual branches start at zero
instead), a pixel-unshuffle stem and pixel-shuffle upsampling (no full-resolution conv on 3 channels,
no transposed-conv checkerboards). The latent is spatial (R/16 side by default), so pose and
expression keep their place in the image; its few channels and the KL term keep identity out of it.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from swapface.model.config import ModelConfig

Identity = Literal["a", "b"]
IDENTITIES: tuple[Identity, Identity] = ("a", "b")
_SLOPE = 0.2


def _act() -> nn.Module:
    return nn.LeakyReLU(_SLOPE, inplace=True)


class ResBlock(nn.Module):
    """Pre-activation residual block whose branch starts at zero, so deep stacks train without norms."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.leaky_relu(x, _SLOPE))
        return x + self.conv2(F.leaky_relu(h, _SLOPE))


class Upsample(nn.Module):
    """Conv to 4x channels, then pixel-shuffle: a learned 2x upscale without checkerboard artefacts."""

    def __init__(self, in_width: int, out_width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_width, out_width * 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(F.pixel_shuffle(self.conv(x), 2), _SLOPE)


class Encoder(nn.Module):
    """Face (B,3,R,R) -> latent mean and log-variance (B,C,R/s,R/s)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        widths = config.widths
        stem = config.stem_stride
        layers: list[nn.Module] = [nn.PixelUnshuffle(stem), nn.Conv2d(3 * stem * stem, widths[0], 3, padding=1),
                                   _act()]
        for i, width in enumerate(widths):
            layers += [ResBlock(width) for _ in range(config.encoder_blocks)]
            if i + 1 < len(widths):
                layers += [nn.Conv2d(width, widths[i + 1], 4, stride=2, padding=1), _act()]
        layers += [ResBlock(widths[-1]), nn.LeakyReLU(_SLOPE)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(widths[-1], 2 * config.latent_channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.body(x * 2 - 1)).chunk(2, dim=1)
        return mu, logvar.clamp(-20.0, 10.0)


class Decoder(nn.Module):
    """Latent -> face RGB (B,3,R,R) and mask (B,1,R,R), both in [0, 1]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        widths = config.widths[::-1]
        layers: list[nn.Module] = [nn.Conv2d(config.latent_channels, widths[0], 3, padding=1), _act()]
        for i, width in enumerate(widths):
            layers += [ResBlock(width) for _ in range(config.decoder_blocks)]
            if i + 1 < len(widths):
                layers.append(Upsample(width, widths[i + 1]))
        width = widths[-1]
        for i, tail in enumerate(config.tail_widths):  # R/stem_stride -> R; no residual block at full size
            layers.append(Upsample(width, tail))
            if i + 1 < len(config.tail_widths):
                layers.append(ResBlock(tail))
            width = tail
        layers.append(nn.Conv2d(width, 4, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = torch.sigmoid(self.body(z).float())
        return out[:, :3], out[:, 3:]


class TrainOutputs(NamedTuple):
    """Reconstructions of both identities' batches through their own decoders, plus latent statistics."""

    rgb_a: torch.Tensor
    mask_a: torch.Tensor
    rgb_b: torch.Tensor
    mask_b: torch.Tensor
    mu: torch.Tensor  # of A's and B's batches concatenated
    logvar: torch.Tensor


class SwapAutoencoder(nn.Module):
    """Shared encoder -> VAE latent -> decoder "a" or "b".

    Training reconstructs each identity through its own decoder; swapping encodes a face of one
    identity and decodes it with the other identity's decoder.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoders = nn.ModuleDict({name: Decoder(config) for name in IDENTITIES})

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B,3,R,R) RGB in [0,1] -> (mu, logvar)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor, identity: Identity) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent -> (rgb, mask) as identity `identity`."""
        return self.decoders[identity](z)

    @torch.no_grad()
    def swap(self, x: torch.Tensor, to: Identity) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic swap (uses the latent mean): faces x rendered as identity `to`."""
        mu, _ = self.encode(x)
        return self.decode(mu, to)

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor) -> TrainOutputs:
        """Training pass: one encoder call for both batches (bigger, faster kernels), a sampled
        latent (reparameterisation), then each half through its own decoder. Every parameter takes
        part, as DistributedDataParallel requires."""
        mu, logvar = self.encode(torch.cat([x_a, x_b]))
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        z_a, z_b = z.split([len(x_a), len(x_b)])
        rgb_a, mask_a = self.decode(z_a, "a")
        rgb_b, mask_b = self.decode(z_b, "b")
        return TrainOutputs(rgb_a, mask_a, rgb_b, mask_b, mu, logvar)
