"""What a training run can be told: `TrainOptions` and its augmentation.

A module of its own (no torch, no model code) so that the web API's job options (`swapface.jobs.options`)
take their defaults from here, the one source, without loading the whole stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PRIORITY_WEIGHT = 3.0  # eyes and mouth count this many times as much as the rest of the face (nose: a quarter of
#                        the extra); DeepFaceLab's "eyes and mouth priority"


TRAIN_PRECISIONS = ("fp32", "bf16")  # training's numeric precisions (bf16: autocast; fp16 has no loss scaling here)

RESAMPLE_MODES = ("bicubic", "bilinear")  # how augmentation resamples the faces (masks and weights: bilinear)
CLASSIC_RESAMPLE = "bilinear"  # the classic's (cv2.warpAffine / cv2.remap with their linear default)

CLASSIC_WARP = 0.04  # about the classic deepfakes warp (a std of 5 px of 256 on a 5x5 grid); the default before
#                     2026-11-29


@dataclass(frozen=True)
class AugmentOptions:
    """How training faces vary (`train.augment` applies it on the training device); the encoder also sees the face
    randomly warped, and the decoder must draw it unwarped, so the model learns faces, not pixel copies."""

    flip: float = 0.5  # probability of a horizontal flip
    rotate: float = 10.0  # degrees, +-
    scale: float = 0.05  # relative, +-
    shift: float = 0.05  # fraction of the crop side, +-
    warp: float = 0.01  # std of the warp's control-point offsets, in [-1, 1] grid units; a quarter of the
    #                     classic's (CLASSIC_WARP): on the CPU proxy on three pairs each halving made the swaps
    #                     follow the source better or as well and every reconstruction better (docs/benchmarks.md)
    warp_points: int = 5  # control points per side of the warp grid
    resample: str = "bicubic"  # RESAMPLE_MODES; bilinear at a random sub-pixel offset is a low-pass filter: a
    #                            target moved by the default affine keeps about 2/3 of a real crop's
    #                            high-frequency energy (bicubic: 99%), and the decoders learn to draw what
    #                            their targets show (docs/benchmarks.md)
    brightness: float = 0.08  # additive, +-
    contrast: float = 0.1  # relative, +-
    saturation: float = 0.1  # relative, +-

    def __post_init__(self) -> None:
        if self.resample not in RESAMPLE_MODES:
            raise ValueError(f"resample must be one of {', '.join(RESAMPLE_MODES)}, got {self.resample!r}")


@dataclass
class TrainOptions:
    """Everything a training run is told: `swapface train`, served training jobs and the benches build one."""

    preset: str = "128"
    resolution: int | None = None  # None: the preset's
    dense_dims: int | None = None  # None: the preset's (a global bottleneck beside the spatial latent; 0: none)
    batch_size: int = 16  # faces per identity per rank
    steps: int | None = None  # total steps; None: until interrupted
    time_limit: float | None = None  # seconds this run may train before it saves and returns
    lr: float = 2e-4
    ssim_weight: float = 1.0
    mask_weight: float = 1.0
    kl_weight: float = 1e-3
    gan_weight: float = 0.0
    save_every: int = 500
    snapshot_every: int = 5000  # keep a model dir (weights + config) of every Nth step in snapshots/ (0: never)
    preview_every: int = 500
    log_every: int = 10
    eval_every: int = 0
    holdout: float = 0.0  # fraction of each faceset (its last frames) kept out of training for eval
    init_from: Path | None = None
    freeze: tuple[str, ...] = ()
    device: str | None = None  # None: cuda if available, else cpu
    precision: str | None = None  # one of TRAIN_PRECISIONS; None: bf16 on GPU, fp32 on CPU
    compile: bool = False
    seed: int = 0
    ema: float = 0.999  # decay of the weights' moving average that swap uses (0: use the raw weights)
    augment: AugmentOptions = field(default_factory=AugmentOptions)
    # Quality levers (docs/benchmarks.md measures each one):
    priority_weight: float = PRIORITY_WEIGHT  # loss weight of the eyes and mouth against 1 for the rest of the face
    expression_weight: float = 0.0  # swaps' expression vs their source's, by a landmark regressor trained alongside
    cycle_weight: float = 0.0  # A->B->A should give A back (L1 on the face)
    late_phase: float = 0.4  # share of the run, at its end, without random warp (DeepFaceLab's schedule): the
    #                          decoders stop guessing the warp they must undo, and place each feature where the
    #                          source has it. Needs a known length (steps or time_limit); off without one and when
    #                          pretraining a base (so a base keeps training the same way when continued)
    late_gan_weight: float = 0.0  # PatchGAN weight during the late phase (0: none)
    lr_dropout: float = 0.0  # share of the weights' updates dropped at random each step (DeepFaceLab's lr_dropout)
    lr_decay: float = 0.0  # share of the run, at its end, over which the learning rate falls to zero (a cosine), so
    #                        the weights settle where full-size steps would keep them jittering around the optimum
    anchor_weight: float = 0.0  # pull toward the --init-from weights each step (L2-SP); drift stays near 1/weight
    swap_gan_weight: float = 0.0  # a PatchGAN with a head per identity also judges each swap as a face of its target
    #                               (through the decoders only: an encoder taught to fool it drops what faces show)
    code_gan_weight: float = 0.01  # the encoder learns to fool a discriminator that tells A's latent codes from B's
    #                                (DeepFaceLab's "true face power"), so codes keep no trace of whose face it was;
    #                                off when pretraining a base (one faceset on both sides)
    color_transfer: float = 0.0  # chance that a face trains in the colours of one of the other identity's
    #                              (DeepFaceLab's ct_mode): each decoder learns to draw in the other's light
