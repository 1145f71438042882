"""The training loop: `train(faceset_a, faceset_b, model_dir, options)`.

Read top to bottom like nanoGPT's train.py: set up (distributed, data, model, optimizer, resume),
then step; every `log_every` steps the ranks agree on losses, finiteness and stop requests, and
checkpoints, previews and logs happen only at those sync points (so the GPU is not stalled each
step, and a resumed run lines up with the uninterrupted one).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from swapface.atomic import atomic_write_text, check_folder_writable
from swapface.errors import InputError, SwapfaceError
from swapface.eval.expression import expression_signals
from swapface.faceset import Faceset
from swapface.faceset.store import shared_backend
from swapface.media.images import write_rgb
from swapface.model import SwapAutoencoder, preset
from swapface.model.discriminator import CodeDiscriminator, PatchDiscriminator
from swapface.model.landmarks import LandmarkRegressor
from swapface.modeldir import WEIGHTS_FILE, load_weights, read_config, save_model, save_weights, write_config
from swapface.outputs import check_outputs
from swapface.train import distributed
from swapface.train.augment import augment, colour_moments, transfer_colours
from swapface.train.checkpoint import (
    CHECKPOINT_FILE,
    SNAPSHOT_DIR,
    flatten,
    load_checkpoint,
    load_optimizer,
    optimizer_tensors,
    save_checkpoint,
    unflatten,
)
from swapface.train.data import FaceTensors, ShardSampler, load_faces, split_holdout
from swapface.train.evaluate import HeldOutEvaluator
from swapface.train.losses import (
    code_identity_loss,
    discriminator_gan_loss,
    expression_loss,
    generator_gan_loss,
    kl_divergence,
    landmark_loss,
    reconstruction_losses,
)
from swapface.train.options import TRAIN_PRECISIONS, TrainOptions
from swapface.train.preview import preview_grid

METRICS_FILE = "metrics.jsonl"
PREVIEW_DIR = "previews"
FREEZABLE = ("encoder",)
PREVIEW_FACES = 4
MIN_LR_SCALE = 1 / 1024
REGRESSOR_LR = 1e-3


@dataclass
class Progress:
    """What the loop reports at each sync point."""

    step: int
    total: int | None
    metrics: dict[str, float]


@dataclass
class TrainResult:
    step: int
    interrupted: bool
    metrics: dict[str, float]
    model: SwapAutoencoder  # the published model (EMA weights if enabled), on the training device
    main_process: bool  # rank 0 (the one that reports) under torchrun; always True otherwise


def _check_options(options: TrainOptions) -> None:
    if options.precision not in (None, *TRAIN_PRECISIONS):
        raise SwapfaceError(f"precision must be {' or '.join(TRAIN_PRECISIONS)}, got {options.precision!r}")
    unknown = set(options.freeze) - set(FREEZABLE)
    if unknown:
        raise SwapfaceError(f"can only freeze {', '.join(FREEZABLE)}, not {', '.join(sorted(unknown))}")
    for name in ("batch_size", "save_every", "preview_every", "log_every"):
        if getattr(options, name) < 1:
            raise SwapfaceError(f"{name.replace('_', '-')} must be at least 1")
    if not 0 <= options.holdout < 0.5:
        raise SwapfaceError("holdout must be in [0, 0.5)")
    if not 0 <= options.ema < 1:
        raise SwapfaceError("ema must be in [0, 1)")
    if options.time_limit is not None and options.time_limit <= 0:
        raise SwapfaceError("time limit must be positive")
    if not 0 <= options.color_transfer <= 1:
        raise SwapfaceError("color transfer is a chance: give it in [0, 1]")
    if not 0 <= options.late_phase < 1 or not 0 <= options.lr_dropout < 1:
        raise SwapfaceError("late phase and lr dropout are shares: give them in [0, 1)")
    if not 0 <= options.lr_decay <= 1:
        raise SwapfaceError("lr decay is a share of the run: give it in [0, 1]")
    if options.lr_decay and options.steps is None and options.time_limit is None:
        raise SwapfaceError("--lr-decay is a share of the run: give --steps or --time-limit too")
    if min(options.expression_weight, options.cycle_weight, options.late_gan_weight, options.swap_gan_weight,
           options.code_gan_weight) < 0:
        raise SwapfaceError("loss weights must not be negative")
    if options.priority_weight < 1:
        raise SwapfaceError("priority weight must be at least 1 (the weight of the rest of the face)")
    if options.anchor_weight < 0 or options.anchor_weight * options.lr >= 1:
        raise SwapfaceError("anchor weight must be in [0, 1/lr)")
    if options.anchor_weight and options.init_from is None:
        raise SwapfaceError("--anchor-weight pulls toward the --init-from weights: give --init-from too")
    if options.eval_every and not options.holdout:
        raise SwapfaceError("--eval-every needs held-out faces: give --holdout too (e.g. 0.1)")


def faceset_coverage(path_a: Path, path_b: Path) -> str:
    """The crop coverage shared by both facesets; different coverages cannot train one model."""
    coverages = []
    for path in (path_a, path_b):
        faceset = Faceset.open(path)
        coverages.append(faceset.spec.coverage)
        faceset.close()
    if coverages[0] != coverages[1]:
        raise InputError(path_b, f"crops have coverage '{coverages[1]}' but {path_a} has '{coverages[0]}'; "
                                 "extract both with the same --coverage")
    return coverages[0]


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """Ctrl-C / SIGTERM set an event (checked at sync points) instead of killing the process."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: event.set())
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Trainer:
    """State of one training run; `run()` is the loop."""

    def __init__(self, faceset_a: Path, faceset_b: Path, model_dir: Path, options: TrainOptions,
                 dist: distributed.Distributed, message: Callable[[str], None]) -> None:
        self.faceset_paths = (Path(faceset_a), Path(faceset_b))
        self.pretraining = self.faceset_paths[0].resolve() == self.faceset_paths[1].resolve()
        if self.pretraining:  # both sides hold the same faces: the code discriminator has nothing to tell apart,
            # and a base that is continued later keeps its random warp (each pair ends in its own late phase)
            options = dataclasses.replace(options, code_gan_weight=0.0, late_phase=0.0)
        self.late_phase_unplaced = bool(options.late_phase) and options.steps is None and options.time_limit is None
        if self.late_phase_unplaced:
            options = dataclasses.replace(options, late_phase=0.0)
        self.options, self.dist, self.model_dir = options, dist, Path(model_dir)
        self.message = message if dist.is_main else (lambda _text: None)
        device = self.device = dist.device

        # -- model config: from the model dir when resuming, else the preset + the facesets' coverage
        coverage = faceset_coverage(*self.faceset_paths)
        self.face_backend = shared_backend(self.faceset_paths)
        self.resuming = (self.model_dir / CHECKPOINT_FILE).is_file()
        if not self.resuming and (self.model_dir / WEIGHTS_FILE).exists():
            raise InputError(self.model_dir, f"holds a model but no {CHECKPOINT_FILE} to resume from; train into a "
                                             "new folder with --init-from to start from it")
        if self.resuming:
            config = read_config(self.model_dir)
            if options.resolution not in (None, config.resolution):
                raise InputError(self.model_dir, f"holds a {config.resolution} px model; cannot resume it at "
                                                 f"{options.resolution} px")
        else:
            config = preset(options.preset, options.resolution, coverage, options.dense_dims)
        if config.coverage != coverage:
            raise InputError(self.model_dir, f"model was trained on '{config.coverage}' crops, the facesets "
                                             f"hold '{coverage}' crops")
        self.config = config

        # -- data: uint8 tensors on the training device; every rank samples its own shard
        self.faces: dict[str, FaceTensors] = {}
        self.heldout: dict[str, FaceTensors | None] = {}
        self.samplers: dict[str, ShardSampler] = {}
        for offset, (name, path) in enumerate(zip("ab", self.faceset_paths, strict=True)):
            train_faces, held = split_holdout(load_faces(path, config.resolution), options.holdout)
            if len(train_faces) < dist.world_size:
                raise InputError(path, f"only {len(train_faces)} training faces for {dist.world_size} ranks")
            self.faces[name], self.heldout[name] = train_faces.to(device), held
            self.samplers[name] = ShardSampler(len(train_faces), dist.rank, dist.world_size,
                                               seed=options.seed * 1000 + offset * 100 + dist.rank)
        torch.manual_seed(options.seed * 1000 + 7 + dist.rank)
        self.augment_generator = torch.Generator(device).manual_seed(options.seed * 1000 + 13 + dist.rank)

        # -- model, optimizer, optional discriminator
        self.model = SwapAutoencoder(config).to(device)
        if options.init_from is not None and not self.resuming:
            self._init_from(Path(options.init_from))
        if "encoder" in options.freeze:
            self.model.encoder.requires_grad_(False)
        if device.type == "cuda":  # NHWC convs are the tensor-core path; cuDNN picks the fastest kernels
            self.model = self.model.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.anchor = self._anchor(Path(options.init_from), trainable) if options.anchor_weight else None
        # The published model: a moving average of the weights, steadier from step to step (less
        # flicker in swapped video) than the raw weights. Kept on every rank, so ranks stay alike.
        self.ema = copy.deepcopy(self.model).requires_grad_(False) if options.ema else None
        self.published = self.ema if self.ema is not None else self.model
        fused = device.type == "cuda"  # one kernel for all parameters instead of several per tensor
        self.optimizer = torch.optim.AdamW(trainable, lr=options.lr, betas=(0.9, 0.99), weight_decay=0.0, fused=fused)
        self.discriminator = self.disc_optimizer = None
        if options.gan_weight > 0 or (options.late_phase > 0 and options.late_gan_weight > 0) or \
                options.swap_gan_weight > 0:
            self.discriminator = PatchDiscriminator(heads=2 if options.swap_gan_weight > 0 else 1).to(device)
            self.disc_optimizer = torch.optim.AdamW(self.discriminator.parameters(), lr=options.lr,
                                                    betas=(0.5, 0.99), weight_decay=0.0, fused=fused)
        owners = torch.arange(2, device=device).repeat_interleave(options.batch_size)  # a batch: A's faces, then B's
        # which head judges each face of a batch, when the discriminator has one per identity
        self.claims = owners if options.swap_gan_weight > 0 else None
        self.code_discriminator = self.code_optimizer = None
        if options.code_gan_weight > 0:
            self.code_discriminator = CodeDiscriminator(config.latent_channels + config.dense_channels,
                                                        config.latent_side).to(device)
            self.code_optimizer = torch.optim.AdamW(self.code_discriminator.parameters(), lr=options.lr,
                                                    betas=(0.5, 0.99), weight_decay=0.0, fused=fused)
            self.code_is_b = owners.float()  # the code discriminator's answers: was it B's face
        self.regressor = self.regressor_optimizer = None
        if options.expression_weight > 0:  # the expression loss's judge, trained on the real crops alongside
            self.regressor = LandmarkRegressor().to(device)
            self.regressor_optimizer = torch.optim.AdamW(self.regressor.parameters(), lr=REGRESSOR_LR,
                                                         weight_decay=0.0, fused=fused)
            resolution = config.resolution
            self.landmarks = {name: torch.from_numpy(faces.landmarks / resolution).float().to(device)
                              for name, faces in self.faces.items()}
            self.expression_means = {name: expression_signals(points).mean(0)
                                     for name, points in self.landmarks.items()}
        self.precision = options.precision or ("bf16" if device.type == "cuda" else "fp32")
        self.step, self.lr_scale = 0, 1.0
        self.run_start = time.perf_counter()
        self.late_augment = dataclasses.replace(options.augment, warp=0.0)

        # -- fixed preview faces (evenly spaced through each faceset; a faceset with fewer faces than
        # columns repeats its own, so both identities fill the same grid)
        columns = min(PREVIEW_FACES, max(len(faces) for faces in self.faces.values()))
        self.preview_faces = {
            name: faces.batch(torch.linspace(0, len(faces) - 1, columns).round().long())[0]
            for name, faces in self.faces.items()}

        if self.resuming:
            self._load(self.model_dir / CHECKPOINT_FILE)
            self._trim_metrics()
            self.message(f"resumed {self.model_dir} at step {self.step}")
        else:
            if dist.is_main:
                self.model_dir.mkdir(parents=True, exist_ok=True)
            self._save()  # step 0: the model dir is valid from the start, and rollback has a target

        # what DDP does not sync
        for module in (self.discriminator, self.code_discriminator, None if self.resuming else self.ema):
            if module is not None:
                distributed.broadcast_from_main(module, dist)
        self.ddp = self.model
        if dist.enabled:
            self.ddp = DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda"
                                               else None)
        # Shapes are fixed for a run; dynamic=False recompiles for a new shape (another resolution in the same
        # process) instead of tracing symbolic sizes, which inductor cannot always order (torch 2.13).
        self.forward = torch.compile(self.ddp, dynamic=False) if options.compile else self.ddp
        # the losses are chains of memory-bound elementwise ops: compiled, they fuse into a few kernels
        self.losses = torch.compile(reconstruction_losses, dynamic=False) if options.compile else reconstruction_losses
        self.tensorboard = self._tensorboard()
        self.evaluator = None
        if options.eval_every and dist.is_main:
            held_a, held_b = self.heldout["a"], self.heldout["b"]
            if held_a is None or held_b is None:
                raise SwapfaceError("--holdout leaves no held-out faces: the facesets are too small")
            self.evaluator = HeldOutEvaluator(held_a, held_b, self.faces["a"].embeddings.mean(0),
                                              self.faces["b"].embeddings.mean(0))

    # ------------------------------------------------------------------------------------------------
    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def batch(self, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """An augmented batch: (warped input, target, target mask, target weights)."""
        images, masks, weights = self.faces[name].batch(self.samplers[name].next(self.options.batch_size),
                                                          self.options.priority_weight)
        options = self.late_augment if self.in_late_phase() else self.options.augment
        out = augment(images, masks, weights, options, self.augment_generator)
        if self.device.type == "cuda":
            out = tuple(t.contiguous(memory_format=torch.channels_last) for t in out)
        return out

    def run_progress(self) -> tuple[float, float]:
        """How far the run has come and how long it is: in steps, else in seconds of this run's time limit
        (an open-ended run never nears its end)."""
        o = self.options
        if o.steps is not None:
            return self.step, o.steps
        if o.time_limit is not None:
            return time.perf_counter() - self.run_start, o.time_limit
        return self.step, math.inf

    def in_late_phase(self) -> bool:
        """In the last `late_phase` share of the run."""
        done, total = self.run_progress()
        return bool(self.options.late_phase) and done >= (1 - self.options.late_phase) * total

    def current_lr(self) -> float:
        """The learning rate now: the base rate, halved per rollback, times a cosine from 1 to 0 over the last
        `lr_decay` share of the run."""
        o = self.options
        lr = o.lr * self.lr_scale
        if o.lr_decay:
            done, total = self.run_progress()
            left = max(1 - done / total, 0.0)
            lr *= 0.5 - 0.5 * math.cos(math.pi * min(left / o.lr_decay, 1.0))
        return lr

    def train_step(self) -> dict[str, torch.Tensor]:
        """One optimizer step on a batch of each identity; returns the loss terms (device tensors)."""
        o = self.options
        input_a, target_a, mask_a, weight_a = self.batch("a")
        input_b, target_b, mask_b, weight_b = self.batch("b")
        if o.color_transfer > 0:
            moments_a, moments_b = colour_moments(target_a, mask_a), colour_moments(target_b, mask_b)
            input_a, target_a = transfer_colours(input_a, target_a, moments_a, moments_b, o.color_transfer,
                                                 self.augment_generator)
            input_b, target_b = transfer_colours(input_b, target_b, moments_b, moments_a, o.color_transfer,
                                                 self.augment_generator)
        swaps = self.regressor is not None or o.swap_gan_weight > 0
        with self.autocast():  # the expression and cycle losses train the encoder through the swaps; the GAN not
            out = self.forward(input_a, input_b, swaps=swaps, cycle=o.cycle_weight > 0,
                               swap_grad=self.regressor is not None or o.cycle_weight > 0)
        rec_a = self.losses(out.rgb_a, out.mask_a, target_a, mask_a, weight_a)
        rec_b = self.losses(out.rgb_b, out.mask_b, target_b, mask_b, weight_b)
        terms = {key: (rec_a[key] + rec_b[key]) / 2 for key in rec_a}
        terms["kl"] = kl_divergence(out.mu, out.logvar)
        loss = terms["l1"] + o.ssim_weight * terms["ssim"] + o.mask_weight * terms["mask"] + o.kl_weight * terms["kl"]
        if o.cycle_weight > 0:
            terms["cycle"] = (self.losses(out.cycle_a, out.mask_a, target_a, mask_a, weight_a)["l1"]
                              + self.losses(out.cycle_b, out.mask_b, target_b, mask_b, weight_b)["l1"]) / 2
            loss = loss + o.cycle_weight * terms["cycle"]
        if self.regressor is not None:
            terms["expression"] = self._expression_loss(out, target_a, target_b)
            loss = loss + o.expression_weight * terms["expression"]
        if self.code_discriminator is not None:  # the encoder's side of the game: codes that do not tell
            self.code_discriminator.requires_grad_(False)
            terms["code_g"] = code_identity_loss(self.code_discriminator(out.mu), 1 - self.code_is_b)
            self.code_discriminator.requires_grad_(True)
            loss = loss + o.code_gan_weight * terms["code_g"]
        gan_weight = max(o.gan_weight, o.late_gan_weight) if self.in_late_phase() else o.gan_weight
        # what the discriminator judges as generated, term -> (images claiming A then B, weight)
        fakes = {"gan_g": (torch.cat([out.rgb_a, out.rgb_b]), gan_weight)}
        if o.swap_gan_weight > 0:
            fakes["swap_gan_g"] = (torch.cat([out.swap_ba, out.swap_ab]), o.swap_gan_weight)
        fakes = {name: fake for name, fake in fakes.items() if fake[1] > 0}
        if fakes:
            self.discriminator.requires_grad_(False)
            with self.autocast():
                for name, (images, weight) in fakes.items():
                    terms[name] = generator_gan_loss(self.discriminator(images, self.claims))
                    loss = loss + weight * terms[name]
            self.discriminator.requires_grad_(True)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if o.lr_decay:
            self._apply_lr()
        self._optimizer_step()
        self._update_ema()
        if self.regressor is not None:
            terms["landmarks"] = self._train_regressor()
        if self.code_discriminator is not None:
            terms["code_d"] = self._train_code_discriminator(out.mu.detach())
        if fakes:
            with self.autocast():
                real = self.discriminator(torch.cat([target_a, target_b]), self.claims)
                fake = torch.cat([self.discriminator(images.detach(), self.claims).flatten()
                                  for images, _ in fakes.values()])
            terms["gan_d"] = discriminator_gan_loss(real, fake)
            self._helper_step(self.discriminator, self.disc_optimizer, terms["gan_d"])
        terms["loss"] = loss
        return {key: value.detach() for key, value in terms.items()}

    def _optimizer_step(self) -> None:
        """AdamW's step; with lr dropout, each weight keeps its old value with probability `lr_dropout`
        (DeepFaceLab's trick for the fine detail late in training: noisier, smaller steps); with an anchor,
        each weight then moves back toward the base's by lr * anchor_weight of the way."""
        if not self.options.lr_dropout:
            self.optimizer.step()
        else:
            params = [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
            before = [p.detach().clone() for p in params]
            self.optimizer.step()
            with torch.no_grad():
                for p, old in zip(params, before, strict=True):
                    keep = torch.rand(p.shape, device=p.device) < self.options.lr_dropout
                    p.copy_(torch.where(keep, old, p))
        if self.anchor is not None:
            params, start = self.anchor
            pull = self.current_lr() * self.options.anchor_weight
            with torch.no_grad():
                for p, p0 in zip(params, start, strict=True):
                    p.lerp_(p0, pull)

    def _expression_loss(self, out, target_a: torch.Tensor, target_b: torch.Tensor) -> torch.Tensor:
        """Expression of each swap against its source, both read by the landmark regressor."""
        self.regressor.requires_grad_(False)
        with self.autocast():
            swapped = self.regressor(torch.cat([out.swap_ab, out.swap_ba]).float())
            with torch.no_grad():
                sources = self.regressor(torch.cat([target_a, target_b]))
        self.regressor.requires_grad_(True)
        n = len(target_a)
        means = self.expression_means
        return (expression_loss(swapped[:n], sources[:n], means["a"], means["b"])
                + expression_loss(swapped[n:], sources[n:], means["b"], means["a"])) / 2

    def _train_regressor(self) -> torch.Tensor:
        """One step of the landmark regressor on clean crops of both identities and their landmarks."""
        images, points = [], []
        for name, faces in self.faces.items():
            index = torch.randint(len(faces), (self.options.batch_size,), device=self.device,
                                  generator=self.augment_generator)
            images.append(faces.images[index].float() / 255)
            points.append(self.landmarks[name][index])
        with self.autocast():
            predicted = self.regressor(torch.cat(images))
        loss = landmark_loss(predicted, torch.cat(points))
        self._helper_step(self.regressor, self.regressor_optimizer, loss)
        return loss.detach()

    def _train_code_discriminator(self, codes: torch.Tensor) -> torch.Tensor:
        """One step of the code discriminator on this step's latent means (A's then B's)."""
        loss = code_identity_loss(self.code_discriminator(codes), self.code_is_b)
        self._helper_step(self.code_discriminator, self.code_optimizer, loss)
        return loss.detach()

    def _helper_step(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """One optimizer step of a module trained beside the model (a discriminator, the landmark regressor):
        plain modules, not under DistributedDataParallel, so their gradients are averaged across ranks by hand."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for p in module.parameters():
            p.grad = distributed.mean_across_ranks(p.grad, self.dist)
        optimizer.step()

    @torch.no_grad()
    def _update_ema(self) -> None:
        """EMA with warm-up (decay (1+t)/(10+t) early on), so short runs publish trained weights too."""
        if self.ema is None:
            return
        decay = min(self.options.ema, (1 + self.step) / (10 + self.step))
        torch._foreach_lerp_(list(self.ema.parameters()), list(self.model.parameters()), 1 - decay)

    def run(self, stop: threading.Event, progress: Callable[[Progress], None] | None = None) -> TrainResult:
        o, dist = self.options, self.dist
        self.message(f"training {self.config.resolution} px model on {self.device} ({self.precision}), "
                     f"{len(self.faces['a'])} + {len(self.faces['b'])} faces; effective batch = "
                     f"{o.batch_size} per identity per rank x {dist.world_size} rank(s) = "
                     f"{o.batch_size * dist.world_size} per identity")
        if self.pretraining:
            self.message("one faceset for both sides: pretraining a base model (both decoders learn every face); "
                         "start pairs from it with --init-from")
        if self.late_phase_unplaced:
            self.message("no --steps or --time-limit: the run has no end to place the late phase at, so it keeps its "
                         "random warp throughout (resume with --steps to end without it)")
        if o.swap_gan_weight > 0 and o.init_from is None and self.step == 0:
            self.message("warning: --swap-gan-weight from scratch shapes the decoders before they can draw a face "
                         "(on a GPU run it broke the swaps: docs/benchmarks.md); start from a base with --init-from")
        self.model.train()
        window: dict[str, torch.Tensor] = {}
        window_steps, window_start = 0, time.perf_counter()
        self.run_start = window_start
        deadline = math.inf if o.time_limit is None else window_start + o.time_limit
        metrics: dict[str, float] = {}
        while o.steps is None or self.step < o.steps:
            terms = self.train_step()
            self.step += 1
            for key, value in terms.items():
                window[key] = window.get(key, 0) + value
            window_steps += 1
            # A stop request is honoured at the next step (a usual grace period is ~10 s; a sync
            # interval can be longer), by every rank at the same step.
            if not self._is_sync_step() and not distributed.any_rank(stop.is_set(), dist):
                continue
            # -- sync point: agree on mean losses, finiteness and stop requests across ranks
            keys = sorted(window)
            flags = [float(time.perf_counter() > deadline), float(stop.is_set())]
            values = torch.cat([torch.stack([window[k] / window_steps for k in keys]).float(),
                                torch.tensor(flags, device=self.device)])
            values = distributed.mean_across_ranks(values, dist).tolist()
            stop_requested = values.pop() > 0
            out_of_time = values.pop() > 0  # any rank past its deadline: all stop at this same step
            elapsed = time.perf_counter() - window_start
            metrics = dict(zip(keys, values, strict=True))
            metrics.update(lr=self.current_lr(),
                           img_per_s=2 * o.batch_size * dist.world_size * window_steps / max(elapsed, 1e-9))
            window, window_steps = {}, 0
            if not all(math.isfinite(v) for v in values):
                self._roll_back(metrics)
                window_start = time.perf_counter()
                continue
            self._log(metrics)
            if progress is not None and dist.is_main:
                progress(Progress(self.step, o.steps, metrics))
            done = stop_requested or out_of_time or (o.steps is not None and self.step >= o.steps)
            if done or self.step % o.save_every == 0:
                self._save()
            if dist.is_main and (self.step % o.preview_every == 0 or done):
                self._preview()
            if self.evaluator is not None and (self.step % o.eval_every == 0 or done):
                self._log({"event": "eval", **self.evaluator(self.published, self.autocast(), self.device)})
            if stop_requested:
                self.message(f"stopped at step {self.step}; checkpoint saved in {self.model_dir}")
                return TrainResult(self.step, True, metrics, self.published, dist.is_main)
            if out_of_time:
                self.message(f"time limit reached at step {self.step}; checkpoint saved in {self.model_dir}")
                break
            window_start = time.perf_counter()
        return TrainResult(self.step, False, metrics, self.published, dist.is_main)

    def _is_sync_step(self) -> bool:
        o = self.options
        return (self.step % o.log_every == 0 or self.step % o.save_every == 0 or self.step % o.preview_every == 0
                or (o.eval_every and self.step % o.eval_every == 0) or (o.steps is not None and self.step >= o.steps))

    # -- checkpoints --------------------------------------------------------------------------------
    def _rng_state(self) -> dict[str, torch.Tensor]:
        """This rank's random state: global CPU (and CUDA) RNG, augmentation generator, samplers."""
        state = {"torch": torch.get_rng_state(), "augment": self.augment_generator.get_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        for name, sampler in self.samplers.items():
            state.update(flatten(f"sampler_{name}", sampler.state_dict()))
        return state

    def _set_rng_state(self, state: dict[str, torch.Tensor], data_order: bool) -> None:
        torch.set_rng_state(state["torch"])
        self.augment_generator.set_state(state["augment"])
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)
        if data_order:
            for name, sampler in self.samplers.items():
                sampler.load_state_dict(unflatten(f"sampler_{name}", state))

    def _save(self) -> None:
        """Write checkpoint.safetensors (everything), then model.safetensors and config.json for swap."""
        ranks = distributed.gather_objects(self._rng_state(), self.dist)
        if self.dist.is_main:
            tensors = flatten("model", self.model.state_dict())
            if self.ema is not None:
                tensors.update(flatten("ema", self.ema.state_dict()))
            optim, groups = optimizer_tensors(self.optimizer)
            tensors.update(flatten("optim", optim))
            state = {"step": self.step, "lr_scale": self.lr_scale, "world_size": self.dist.world_size,
                     "faces": [len(self.faces["a"]), len(self.faces["b"])],
                     "optim_groups": groups, "model": self.config.to_dict()}
            if self.discriminator is not None:
                tensors.update(flatten("disc", self.discriminator.state_dict()))
                disc_optim, disc_groups = optimizer_tensors(self.disc_optimizer)
                tensors.update(flatten("disc_optim", disc_optim))
                state["disc_optim_groups"] = disc_groups
            if self.regressor is not None:
                tensors.update(flatten("landmarks", self.regressor.state_dict()))
                regressor_optim, regressor_groups = optimizer_tensors(self.regressor_optimizer)
                tensors.update(flatten("landmarks_optim", regressor_optim))
                state["landmarks_optim_groups"] = regressor_groups
            if self.code_discriminator is not None:
                tensors.update(flatten("code_disc", self.code_discriminator.state_dict()))
                code_optim, code_groups = optimizer_tensors(self.code_optimizer)
                tensors.update(flatten("code_disc_optim", code_optim))
                state["code_disc_optim_groups"] = code_groups
            for rank, rng in enumerate(ranks):
                tensors.update(flatten(f"rng{rank}", rng))
            save_checkpoint(self.model_dir / CHECKPOINT_FILE, tensors, state)
            save_weights(self.model_dir, self.published)
            write_config(self.model_dir, self.config, self._training_record())
            every = self.options.snapshot_every
            if every and self.step and self.step % every == 0:
                save_model(self.model_dir / SNAPSHOT_DIR / f"step-{self.step:08d}", self.published,
                           self._training_record())
        distributed.barrier(self.dist)

    def _load(self, path: Path) -> None:
        tensors, state = load_checkpoint(path, "cpu")
        load_weights(self.model, path, unflatten("model", tensors))
        if self.ema is not None:
            ema = unflatten("ema", tensors)
            load_weights(self.ema, path, ema or unflatten("model", tensors))  # a run without EMA: start it here
        try:
            load_optimizer(self.optimizer, unflatten("optim", tensors), state["optim_groups"])
            if self.discriminator is not None:
                if "disc_optim_groups" not in state:
                    raise ValueError("checkpoint has no discriminator")
                self.discriminator.load_state_dict(unflatten("disc", tensors))
                load_optimizer(self.disc_optimizer, unflatten("disc_optim", tensors), state["disc_optim_groups"])
            if self.regressor is not None:
                if "landmarks_optim_groups" not in state:
                    raise ValueError("checkpoint has no landmark regressor")
                self.regressor.load_state_dict(unflatten("landmarks", tensors))
                load_optimizer(self.regressor_optimizer, unflatten("landmarks_optim", tensors),
                               state["landmarks_optim_groups"])
            if self.code_discriminator is not None and "code_disc_optim_groups" in state:
                self.code_discriminator.load_state_dict(unflatten("code_disc", tensors))
                load_optimizer(self.code_optimizer, unflatten("code_disc_optim", tensors),
                               state["code_disc_optim_groups"])
            elif self.code_discriminator is not None:  # a run from before the code GAN was a default: it learns
                self.message("the checkpoint has no code discriminator (--code-gan-weight): a new one starts here")
        except (ValueError, KeyError, RuntimeError) as exc:
            detail = " ".join(line.strip() for line in str(exc).strip().splitlines()[:2])  # torch's run on and on
            raise InputError(path, f"cannot resume with these options ({detail}); use the --freeze, "
                                   "--gan-weight, --late-gan-weight, --swap-gan-weight and --expression-weight of the "
                                   "original run") from None
        self.step, self.lr_scale = int(state["step"]), float(state["lr_scale"])
        self._apply_lr()
        same_faces = state["faces"] == [len(self.faces["a"]), len(self.faces["b"])]
        if not same_faces:
            self.message(f"the facesets hold {len(self.faces['a'])} + {len(self.faces['b'])} training faces, the "
                         f"checkpoint was made with {state['faces'][0]} + {state['faces'][1]}: data order starts "
                         "afresh")
        if state["world_size"] == self.dist.world_size:
            self._set_rng_state(unflatten(f"rng{self.dist.rank}", tensors), data_order=same_faces)
        else:
            self.message(f"checkpoint was made with {state['world_size']} rank(s), now {self.dist.world_size}: "
                         "data order and random state start afresh from the seed")

    def _apply_lr(self) -> None:
        """The model's and its discriminators' optimizers step at the current rate (the game keeps its balance)."""
        lr = self.current_lr()
        for optimizer in (self.optimizer, self.disc_optimizer, self.code_optimizer):
            if optimizer is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr

    def _roll_back(self, metrics: dict[str, float]) -> None:
        """Non-finite loss: reload the last good checkpoint and continue at half the learning rate."""
        lr_scale = self.lr_scale / 2
        if lr_scale < MIN_LR_SCALE:
            raise SwapfaceError(f"loss keeps going non-finite (now at step {self.step}) even at "
                                f"{self.options.lr * self.lr_scale:.2e} learning rate; giving up")
        bad_step = self.step
        self._load(self.model_dir / CHECKPOINT_FILE)
        self.lr_scale = lr_scale
        self._apply_lr()
        self.message(f"non-finite loss at step {bad_step}: rolled back to step {self.step}, "
                     f"learning rate lowered to {self.options.lr * lr_scale:.2e}")
        self._log({**metrics, "event": "rollback", "bad_step": bad_step, "lr": self.options.lr * lr_scale})

    def _init_from(self, source: Path) -> None:
        donor = read_config(source)
        mine = self.config.replace(coverage=donor.coverage)
        if donor != mine:
            raise InputError(source, "--init-from model has a different architecture (resolution, widths or "
                                     "latent); use one trained with the same preset and resolution")
        load_weights(self.model, source / WEIGHTS_FILE)  # (the EMA copy is made from these weights)
        self.message(f"initialised weights from {source}")

    def _anchor(self, source: Path, trainable: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The trainable weights and the --init-from weights they are pulled back toward (L2-SP, Li et al. 2018,
        decoupled from the loss as AdamW decouples weight decay). A pair fine-tuned from a base forgets what the
        base knew of other faces' expressions the longer it trains; the pull lets each weight drift about
        1/anchor_weight from where the base left it. Read from the base's file, so a resumed run has it too."""
        base = copy.deepcopy(self.model).requires_grad_(False)  # same device and memory format
        load_weights(base, source / WEIGHTS_FILE)
        return trainable, [b for p, b in zip(self.model.parameters(), base.parameters(), strict=True)
                           if p.requires_grad]

    def _training_record(self) -> dict:
        o = self.options
        return {"faceset_a": str(self.faceset_paths[0]), "faceset_b": str(self.faceset_paths[1]),
                "step": self.step, "batch_size": o.batch_size, "world_size": self.dist.world_size, "lr": o.lr,
                "kl_weight": o.kl_weight, "gan_weight": o.gan_weight, "ema": o.ema, "precision": self.precision,
                "priority_weight": o.priority_weight, "expression_weight": o.expression_weight,
                "cycle_weight": o.cycle_weight, "late_phase": o.late_phase, "late_gan_weight": o.late_gan_weight,
                "lr_dropout": o.lr_dropout, "lr_decay": o.lr_decay,
                "init_from": None if o.init_from is None else str(o.init_from), "anchor_weight": o.anchor_weight,
                "swap_gan_weight": o.swap_gan_weight, "code_gan_weight": o.code_gan_weight,
                "color_transfer": o.color_transfer,
                "augment": asdict(o.augment), "faces": self.face_backend}

    # -- logs and previews (rank 0) ---------------------------------------------------------------
    def _log(self, metrics: dict) -> None:
        if not self.dist.is_main:
            return
        record = {"step": self.step, "time": round(time.time(), 3), **metrics}
        with open(self.model_dir / METRICS_FILE, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            for key, value in metrics.items():
                if isinstance(value, float):
                    self.tensorboard.add_scalar(key, value, self.step)

    def _trim_metrics(self) -> None:
        """On resume drop log lines past the checkpoint (and a line cut by a crash)."""
        path = self.model_dir / METRICS_FILE
        if not self.dist.is_main or not path.is_file():
            return
        kept = []
        for line in path.read_text("utf-8").splitlines():
            try:
                if json.loads(line)["step"] <= self.step:
                    kept.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
        atomic_write_text(path, "".join(line + "\n" for line in kept))

    def _preview(self) -> None:
        grid = preview_grid(self.published, self.preview_faces["a"], self.preview_faces["b"], self.autocast())
        write_rgb(self.model_dir / PREVIEW_DIR / f"step-{self.step:08d}.png", grid)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()

    def _tensorboard(self):
        if not self.dist.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.model_dir / "tensorboard"))


def train(faceset_a: str | Path, faceset_b: str | Path, model_dir: str | Path, options: TrainOptions,
          progress: Callable[[Progress], None] | None = None,
          message: Callable[[str], None] = print) -> TrainResult:
    """Train (or resume) the model in `model_dir` on two facesets; single process or under torchrun."""
    _check_options(options)
    model_dir = Path(model_dir)
    check_outputs([faceset_a, faceset_b, options.init_from], folders=[model_dir])
    check_folder_writable(model_dir)
    new_dir = not model_dir.exists()
    dist = distributed.setup(options.device)
    try:
        with stop_requests() as stop:
            trainer = Trainer(Path(faceset_a), Path(faceset_b), model_dir, options, dist, message)
            try:
                return trainer.run(stop, progress)
            finally:
                trainer.close()
    except BaseException:
        # A new run that failed before its first checkpoint leaves no folder behind (one that has a
        # checkpoint is a valid model dir to resume, and stays).
        if new_dir and dist.is_main and not (model_dir / CHECKPOINT_FILE).is_file():
            shutil.rmtree(model_dir, ignore_errors=True)
        raise
    finally:
        distributed.teardown(dist)

