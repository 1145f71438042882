"""What a job request may say: one pydantic model per kind, mirroring the CLI's options.

Choice lists come from the stage modules (one source of truth); unknown keys are refused, so a typo
is a 422, not a silently ignored option. The device is the scheduler's choice, not the client's.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from swapface.faces import DEFAULT_BACKEND, check_backend
from swapface.media.codecs import CODEC_CHOICES
from swapface.model.config import COVERAGES, PRESETS
from swapface.swap.blend import BLEND_MODES
from swapface.swap.color import COLOR_MODES
from swapface.swap.masks import MASK_MODES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    CHOICES: ClassVar[dict[str, Collection[str]]] = {}  # a field's allowed values, from the stage's one list

    @model_validator(mode="after")
    def _choices(self) -> Self:
        for name, choices in self.CHOICES.items():
            if getattr(self, name) not in choices:
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
    size: int = Field(256, ge=64, le=1024)
    coverage: str = "whole"
    every: int = Field(1, ge=1)
    min_face: int = Field(80, ge=8)
    min_score: float | None = None
    max_distance: float = Field(0.6, gt=0)
    min_sharpness: float = Field(0.0, ge=0)
    dedupe: bool = False
    max_frames: int | None = Field(None, ge=1)
    workers: int | None = Field(None, ge=1, le=64)


class TrainJobOptions(_Strict):
    CHOICES = {"preset": PRESETS}
    preset: str = "128"
    resolution: int | None = Field(None, ge=64, le=1024)
    batch_size: int = Field(16, ge=1, le=1024)
    steps: int | None = Field(None, ge=1)
    time_limit: float | None = Field(None, gt=0, description="minutes")
    lr: float = Field(2e-4, gt=0)
    kl_weight: float = Field(1e-3, ge=0)
    gan_weight: float = Field(0.0, ge=0)
    save_every: int = Field(500, ge=1)
    snapshot_every: int = Field(0, ge=0)
    preview_every: int = Field(100, ge=1)
    log_every: int = Field(10, ge=1)
    eval_every: int = Field(0, ge=0)
    holdout: float = Field(0.0, ge=0, lt=0.5)
    seed: int = 0
    ema: float = Field(0.999, ge=0, lt=1)
    precision: Literal["fp32", "bf16"] | None = None
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
    CHOICES = {"codec": CODEC_CHOICES, "color": COLOR_MODES, "mask": MASK_MODES, "blend": BLEND_MODES}
    direction: Literal["a2b", "b2a"] = "a2b"
    color: str = "reinhard"
    mask: str = "all"
    blend: str = "laplacian"
    erode: float = 4.0
    blur: float = Field(12.0, ge=0)
    sharpen: float = Field(0.0, ge=0, le=4)
    smooth: float = Field(1.0, ge=0)
    crf: int = Field(18, ge=0, le=63)
    codec: str = "auto"
    start: float = Field(0.0, ge=0)
    end: float | None = Field(None, gt=0)
    min_face: int | None = Field(None, ge=8)
    detect_every: int = Field(5, ge=1)
    batch_size: int = Field(8, ge=1, le=256)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    preview_at: float | None = Field(None, ge=0, description="swap only the frame at this second, as a PNG")

    @model_validator(mode="after")
    def _range(self) -> SwapJobOptions:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class EvalJobOptions(_Faces):
    min_face: int = Field(80, ge=8)
    max_frames: int | None = Field(None, ge=1)
    workers: int | None = Field(None, ge=1, le=64)


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
