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
        self.side, self.dense_dims = config.latent_side, config.dense_dims
        self.dense = nn.Linear(widths[-1] * config.latent_side**2, 2 * config.dense_dims) if config.dense_dims else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x * 2 - 1)
        mu, logvar = self.head(features).chunk(2, dim=1)
        if self.dense is not None:  # the global code, packed as extra channels after the spatial ones
            dense_mu, dense_logvar = self.dense(features.flatten(1)).chunk(2, dim=1)
            shape = (len(x), -1, self.side, self.side)
            mu = torch.cat([mu, dense_mu.reshape(shape)], 1)
            logvar = torch.cat([logvar, dense_logvar.reshape(shape)], 1)
        return mu, logvar.clamp(-20.0, 10.0)


class Decoder(nn.Module):
    """Latent -> face RGB (B,3,R,R) and mask (B,1,R,R), both in [0, 1]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        widths = config.widths[::-1]
        self.spatial, self.side = config.latent_channels, config.latent_side
        self.map_channels = widths[0] // 4 if config.dense_dims else 0  # the dense code, spread over the cells
        self.dense = (nn.Linear(config.dense_dims, self.map_channels * config.latent_side**2)
                      if config.dense_dims else None)
        layers: list[nn.Module] = [nn.Conv2d(config.latent_channels + self.map_channels, widths[0], 3, padding=1),
                                   _act()]
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
        if self.dense is not None:
            spatial, code = z[:, :self.spatial], z[:, self.spatial:].flatten(1)
            code_map = F.leaky_relu(self.dense(code), _SLOPE).view(len(z), self.map_channels, self.side, self.side)
            z = torch.cat([spatial, code_map], 1)
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
    swap_ab: torch.Tensor | None = None  # A's batch drawn by decoder B (from the latent mean), if asked for
    swap_ba: torch.Tensor | None = None
    cycle_a: torch.Tensor | None = None  # swap_ab encoded again and drawn by decoder A: should give A back
    cycle_b: torch.Tensor | None = None


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

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor, swaps: bool = False, cycle: bool = False,
                swap_grad: bool = True) -> TrainOutputs:
        """Training pass: one encoder call for both batches (bigger, faster kernels), a sampled
        latent (reparameterisation), then each half through its own decoder. Every parameter takes
        part, as DistributedDataParallel requires. `swaps` also draws each batch as the other identity
        (for losses on swaps), `cycle` also encodes those swaps again and draws them back; both inside
        forward, so DistributedDataParallel sees every use of every parameter. Without `swap_grad` the swaps
        are drawn from a detached latent: losses on them train the decoders only."""
        mu, logvar = self.encode(torch.cat([x_a, x_b]))
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        z_a, z_b = z.split([len(x_a), len(x_b)])
        rgb_a, mask_a = self.decode(z_a, "a")
        rgb_b, mask_b = self.decode(z_b, "b")
        out = TrainOutputs(rgb_a, mask_a, rgb_b, mask_b, mu, logvar)
        if swaps or cycle:
            mu_a, mu_b = (mu if swap_grad else mu.detach()).split([len(x_a), len(x_b)])
            swap_ab, swap_ba = self.decode(mu_a, "b")[0], self.decode(mu_b, "a")[0]
            out = out._replace(swap_ab=swap_ab, swap_ba=swap_ba)
            if cycle:
                back_a, back_b = self.encode(torch.cat([swap_ab, swap_ba]))[0].split([len(x_a), len(x_b)])
                out = out._replace(cycle_a=self.decode(back_a, "a")[0], cycle_b=self.decode(back_b, "b")[0])
        return out
