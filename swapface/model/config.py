"""Model hyper-parameters and presets; a config fully describes a model's architecture."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from swapface.errors import SwapfaceError

COVERAGES = ("tight", "whole", "head")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a SwapAutoencoder.

    The encoder starts at R / stem_stride (a pixel-unshuffle stem: no conv runs on the 3-channel
    full-resolution image) and halves the side at each level down to a spatial latent of side
    R / latent_stride. Level i has `min(base_width * 2**i, max_width)` channels. Decoders mirror the
    encoder, then climb from R / stem_stride to R through a thin pixel-shuffle tail. A larger stem
    stride keeps big models' FLOPs close to the 128 px model's.
    """

    resolution: int = 128
    coverage: str = "whole"  # AlignSpec coverage of the training crops; swap must crop faces the same way
    base_width: int = 64
    max_width: int = 512
    latent_channels: int = 32
    latent_stride: int = 16
    stem_stride: int = 2
    encoder_blocks: int = 1  # residual blocks per encoder level
    decoder_blocks: int = 2  # residual blocks per decoder level
    # A global bottleneck beside the spatial latent (the classic dense layer, DeepFaceLab's "inter"): the
    # encoder's last features pass a dense layer of this many numbers too (0: none). It carries what is
    # about the whole face, so the spatial latent can be small. Must be a multiple of latent_side**2 (it is
    # packed as extra latent channels, so the latent stays one tensor).
    dense_dims: int = 0

    def __post_init__(self) -> None:
        if self.coverage not in COVERAGES:
            raise SwapfaceError(f"coverage must be one of {', '.join(COVERAGES)}, got {self.coverage!r}")
        if not 64 <= self.resolution <= 1024 or self.resolution & (self.resolution - 1):
            raise SwapfaceError(f"resolution must be a power of two from 64 to 1024, got {self.resolution}")
        if self.latent_stride < 4 or self.latent_stride & (self.latent_stride - 1):
            raise SwapfaceError(f"latent_stride must be a power of two >= 4, got {self.latent_stride}")
        if self.stem_stride < 2 or self.stem_stride & (self.stem_stride - 1) or self.stem_stride > self.latent_stride:
            raise SwapfaceError(f"stem_stride must be a power of two from 2 to latent_stride, got {self.stem_stride}")
        if self.resolution // self.latent_stride < 4:
            raise SwapfaceError(f"resolution {self.resolution} / latent_stride {self.latent_stride} leaves a "
                                "latent smaller than 4x4")
        if min(self.base_width, self.max_width, self.latent_channels) < 1:
            raise SwapfaceError("widths and latent_channels must be positive")
        cells = (self.resolution // self.latent_stride) ** 2
        if self.dense_dims < 0 or self.dense_dims % cells:
            raise SwapfaceError(f"dense_dims must be a multiple of the latent's {cells} cells, got {self.dense_dims} "
                                "(choose another --dense-dims)")

    @property
    def widths(self) -> tuple[int, ...]:
        """Channels of each encoder level, from R/stem_stride down to R/latent_stride."""
        levels = int(math.log2(self.latent_stride // self.stem_stride)) + 1
        return tuple(min(self.base_width * 2**i, self.max_width) for i in range(levels))

    @property
    def tail_widths(self) -> tuple[int, ...]:
        """Channels of the decoder's levels above the stem, from R/(stem_stride/2) up to R."""
        steps = int(math.log2(self.stem_stride))
        return tuple(max(self.base_width >> k, min(self.base_width, 32)) for k in range(1, steps + 1))

    @property
    def latent_side(self) -> int:
        return self.resolution // self.latent_stride

    @property
    def dense_channels(self) -> int:
        """Latent channels that hold the dense code (dense_dims packed into the latent's cells)."""
        return self.dense_dims // self.latent_side**2

    @property
    def latent_dims(self) -> int:
        return (self.latent_channels + self.dense_channels) * self.latent_side**2

    def replace(self, **changes: object) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SwapfaceError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        return cls(**data)


PRESETS: dict[str, ModelConfig] = {
    # CPU tests and demos: ~0.6 M parameters, trains visibly in a hundred steps on one core.
    "tiny": ModelConfig(resolution=64, base_width=16, max_width=64, latent_channels=16, latent_stride=8,
                        encoder_blocks=1, decoder_blocks=1),
    # CPU work and the demo's bundled model: 128 px, ~7.5 M parameters (15 MB in fp16), an 8x8 spatial
    # latent with a 128-number dense bottleneck beside it (so identity geometry cannot pass); about 0.6 s a
    # step of 8 + 8 faces on one CPU thread in bf16.
    "small": ModelConfig(resolution=128, base_width=32, max_width=128, latent_channels=32, latent_stride=16,
                         encoder_blocks=1, decoder_blocks=1, dense_dims=128),
    # Real work. All three have an 8x8 spatial latent and a 256-number dense bottleneck beside it (on the
    # H200 the 128 preset without it swapped mush: decoder B had never seen A's codes; see docs/benchmarks.md);
    # about 74 M parameters. A training step (forward + backward) costs 34 / 40 / 64 GFLOP per image at
    # 128 / 256 / 512 px without the bottleneck (the classic 4x4-bottleneck model: 27 / 85 / 311).
    "128": ModelConfig(resolution=128, base_width=64, max_width=512, latent_channels=32, latent_stride=16,
                       dense_dims=256),
    "256": ModelConfig(resolution=256, base_width=64, max_width=512, latent_channels=64, latent_stride=32,
                       stem_stride=4, dense_dims=256),
    "512": ModelConfig(resolution=512, base_width=64, max_width=512, latent_channels=64, latent_stride=64,
                       stem_stride=8, dense_dims=256),
}


def preset(name: str, resolution: int | None = None, coverage: str | None = None,
           dense_dims: int | None = None) -> ModelConfig:
    """A preset, optionally at another resolution (the latent keeps its 8x8 side), crop coverage or dense
    bottleneck size (0: none)."""
    if name not in PRESETS:
        raise SwapfaceError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    config = PRESETS[name]
    changes: dict = {}
    if resolution is not None:
        # The latent keeps its side (8x8 in every preset), not its stride: the grid that places pose and
        # expression is the preset's at any size. (Keeping the stride gave the 128 preset a 4x4 latent at 64 px,
        # which the CPU proxy found loses expression; docs/benchmarks.md.)
        stride = max(4, resolution // config.latent_side)
        changes.update(resolution=resolution, latent_stride=stride,
                       stem_stride=max(2, min(config.stem_stride, stride // 4)))
    if coverage is not None:
        changes["coverage"] = coverage
    if dense_dims is not None:
        changes["dense_dims"] = dense_dims
    return config.replace(**changes)
