"""What a job request may say: one pydantic model per kind, mirroring the CLI's options.

Choice lists and defaults come from the stage modules (one source of truth: a job that gives no option runs
what the CLI and the library run, but where a served job has its own reason, said at the field); unknown keys
are refused, so a typo is a 422, not a silently ignored option. The device is the scheduler's choice, not the
client's.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from swapface.eval.evaluate import EvalOptions
from swapface.faces import DEFAULT_BACKEND, check_backend
from swapface.faceset.extract import ExtractOptions
from swapface.media.codecs import CODEC_CHOICES
from swapface.model.config import COVERAGES, PRESETS
from swapface.swap.blend import BLEND_MODES
from swapface.swap.color import COLOR_MODES
from swapface.swap.masks import MASK_MODES
from swapface.swap.options import DIRECTIONS, PRECISIONS, SwapOptions
from swapface.train.options import TRAIN_PRECISIONS, TrainOptions

EXTRACT, TRAIN, SWAP, EVAL = ExtractOptions(), TrainOptions(), SwapOptions(), EvalOptions()  # the stages' defaults


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    CHOICES: ClassVar[dict[str, Collection[str]]] = {}  # a field's allowed values, from the stage's one list
    #                                                     (None, where a field allows it: the stage's default)

    @model_validator(mode="after")
    def _choices(self) -> Self:
        for name, choices in self.CHOICES.items():
            if getattr(self, name) is not None and getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}")
        return self


class _Faces(_Strict):
    """The face backend and its detector (None: the default backend, for swap the model's; the backend's
    first detector), checked against the one list in swapface.faces."""

    backend: str | None = None
    detector: str | None = None

    @model_validator(mode="after")
    def _backend(self) -> _Faces:
        check_backend(self.backend or DEFAULT_BACKEND, self.detector)
        return self


class ExtractJobOptions(_Faces):
    CHOICES = {"coverage": COVERAGES}
    size: int = Field(EXTRACT.spec.size, ge=64, le=1024)
    coverage: str = EXTRACT.spec.coverage
    every: int = Field(EXTRACT.every, ge=1)
    min_face: int = Field(EXTRACT.min_face, ge=8)
    min_score: float | None = EXTRACT.min_score
    max_distance: float = Field(EXTRACT.max_distance, gt=0)
    min_sharpness: float = Field(EXTRACT.min_sharpness, ge=0)
    dedupe: bool = EXTRACT.dedupe
    max_frames: int | None = Field(EXTRACT.max_frames, ge=1)
    workers: int | None = Field(None, ge=1, le=64)  # None: the cores the scheduler gave the job


class TrainJobOptions(_Strict):
    CHOICES = {"preset": PRESETS, "precision": TRAIN_PRECISIONS}
    preset: str = TRAIN.preset
    resolution: int | None = Field(TRAIN.resolution, ge=64, le=1024)
    batch_size: int = Field(TRAIN.batch_size, ge=1, le=1024)
    steps: int | None = Field(TRAIN.steps, ge=1)
    time_limit: float | None = Field(None, gt=0, description="minutes")  # one of it and steps must be given
    lr: float = Field(TRAIN.lr, gt=0)
    kl_weight: float = Field(TRAIN.kl_weight, ge=0)
    gan_weight: float = Field(TRAIN.gan_weight, ge=0)
    save_every: int = Field(TRAIN.save_every, ge=1)
    snapshot_every: int = Field(0, ge=0)  # served: one model per job on the server's disk, no snapshot folders
    preview_every: int = Field(100, ge=1)  # served: the web page shows the run's latest preview, so more often
    log_every: int = Field(TRAIN.log_every, ge=1)
    eval_every: int = Field(TRAIN.eval_every, ge=0)
    holdout: float = Field(TRAIN.holdout, ge=0, lt=0.5)
    seed: int = TRAIN.seed
    ema: float = Field(TRAIN.ema, ge=0, lt=1)
    precision: str | None = TRAIN.precision
    gpus: int = Field(1, ge=1, le=64, description="GPUs trained on data-parallel (on a server without GPUs: "
                                                   "that many CPU processes)")

    @model_validator(mode="after")
    def _ends(self) -> TrainJobOptions:
        if self.steps is None and self.time_limit is None:
            raise ValueError("give steps or time_limit (minutes): a served training job must end")
        if self.eval_every and not self.holdout:
            raise ValueError("eval_every needs holdout (e.g. 0.1)")
        return self


class SwapJobOptions(_Faces):
    CHOICES = {"direction": tuple(DIRECTIONS), "codec": CODEC_CHOICES, "color": COLOR_MODES, "mask": MASK_MODES,
               "blend": BLEND_MODES, "precision": PRECISIONS}
    direction: str = SWAP.direction
    color: str = SWAP.color
    mask: str = SWAP.mask
    blend: str = SWAP.blend
    erode: float = SWAP.erode
    blur: float = Field(SWAP.blur, ge=0)
    sharpen: float = Field(SWAP.sharpen, ge=0, le=4)
    smooth: float = Field(SWAP.smooth, ge=0)
    crf: int = Field(SWAP.video.crf, ge=0, le=63)
    codec: str = SWAP.video.codec
    start: float = Field(SWAP.start, ge=0)
    end: float | None = Field(SWAP.end, gt=0)
    min_face: int | None = Field(SWAP.min_face, ge=8)
    detect_every: int = Field(SWAP.detect_every, ge=1)
    batch_size: int = Field(SWAP.batch_size, ge=1, le=256)
    precision: str = SWAP.precision
    preview_at: float | None = Field(None, ge=0, description="swap only the frame at this second, as a PNG")

    @model_validator(mode="after")
    def _range(self) -> SwapJobOptions:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class EvalJobOptions(_Faces):
    min_face: int = Field(EVAL.min_face, ge=8)
    max_frames: int | None = Field(EVAL.max_frames, ge=1)
    workers: int | None = Field(None, ge=1, le=64)  # None: the cores the scheduler gave the job


class ExtractInputs(_Strict):
    files: list[str] = Field(min_length=1, max_length=1000)


class TrainInputs(_Strict):
    a: str
    b: str


class SwapInputs(_Strict):
    model: str
    video: str


class EvalInputs(_Strict):
    swap: str


KINDS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "extract": (ExtractInputs, ExtractJobOptions),
    "train": (TrainInputs, TrainJobOptions),
    "swap": (SwapInputs, SwapJobOptions),
    "eval": (EvalInputs, EvalJobOptions),
}


def parse(kind: str, inputs: dict[str, Any], options: dict[str, Any]) -> tuple[BaseModel, BaseModel]:
    """Validate a job's inputs and options (raises pydantic.ValidationError)."""
    inputs_model, options_model = KINDS[kind]
    return inputs_model.model_validate(inputs), options_model.model_validate(options)
