"""Model directory I/O: `config.json` (architecture, resolution, crop coverage) + `model.safetensors`.

A model dir is self-describing: the swap and eval stages need nothing else. Every file is written
atomically, and every read failure becomes a one-line InputError naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from swapface.atomic import atomic_path, atomic_write_text
from swapface.errors import InputError, SwapfaceError
from swapface.faces import LEGACY_BACKEND
from swapface.model import ModelConfig, SwapAutoencoder

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "swapface-model"
FORMAT_VERSION = 1
CONFIG_METADATA_KEY = "swapface_model"  # the architecture the weights were made for, in their own header


def write_config(model_dir: str | Path, config: ModelConfig, training: dict | None = None) -> None:
    """Write config.json; `training` records how the model was trained (facesets, options)."""
    data = {"format": FORMAT, "version": FORMAT_VERSION, "resolution": config.resolution,
            "coverage": config.coverage, "model": config.to_dict(), "training": training or {}}
    atomic_write_text(Path(model_dir) / CONFIG_FILE, json.dumps(data, indent=2) + "\n")


def read_config_json(model_dir: str | Path) -> dict:
    """The whole config.json of a model dir, checked."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(model_dir, "model directory not found")
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        raise InputError(path, "missing: not a swapface model directory")
    try:
        data = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"corrupt JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("model"), dict):
        raise InputError(path, "not a swapface model config")
    return data


def read_config(model_dir: str | Path) -> ModelConfig:
    """The ModelConfig recorded in a model dir."""
    path = Path(model_dir) / CONFIG_FILE
    try:
        return ModelConfig.from_dict(read_config_json(model_dir)["model"])
    except (SwapfaceError, TypeError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(path, f"invalid model config ({exc})") from None


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically write a safetensors file (tensors moved to CPU and made contiguous)."""
    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    with atomic_path(path) as tmp:
        try:
            save_file(cpu, str(tmp), metadata=metadata)
        except SafetensorError as exc:  # the Rust writer's I/O errors (disk full...) are not OSErrors
            raise SwapfaceError(f"{path}: cannot write ({_first_line(exc)})") from None


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing or damaged file is an InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "missing")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise InputError(path, f"corrupt safetensors file ({_first_line(exc)})") from None


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata stored in a safetensors header."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            return fh.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise InputError(path, f"corrupt safetensors file ({_first_line(exc)})") from None


def save_model(model_dir: str | Path, model: SwapAutoencoder, training: dict | None = None) -> None:
    """Write the weights, then config.json: a reader never sees a config without its weights."""
    save_weights(model_dir, model)
    write_config(model_dir, model.config, training)


def save_weights(model_dir: str | Path, model: SwapAutoencoder) -> None:
    """The weights, with the config they were made for in their header: the networks are fully
    convolutional, so weights of a 64 px model also load into a 128 px one and would swap garbage;
    the header lets loading catch a config.json that does not match them."""
    save_tensors(Path(model_dir) / WEIGHTS_FILE, model.state_dict(),
                 metadata={CONFIG_METADATA_KEY: json.dumps(model.config.to_dict())})


def load_weights(model: SwapAutoencoder, path: str | Path, state: dict[str, torch.Tensor] | None = None) -> None:
    """Load weights into `model`; missing, extra or mis-shaped tensors are an InputError."""
    state = load_tensors(path) if state is None else state
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(path, f"weights do not fit the model config ({_first_line(exc)})") from None


def load_model(model_dir: str | Path, device: str | torch.device = "cpu") -> tuple[SwapAutoencoder, ModelConfig]:
    """The model of a model dir, in eval mode on `device`, and its config."""
    config = read_config(model_dir)
    weights = Path(model_dir) / WEIGHTS_FILE
    _check_weights_config(weights, config)
    model = SwapAutoencoder(config)
    load_weights(model, weights)
    return model.to(device).eval(), config


def _check_weights_config(weights: Path, config: ModelConfig) -> None:
    """Refuse weights whose header names another architecture than config.json (files from before the
    header was written carry none and are taken as they are)."""
    if not weights.is_file():
        raise InputError(weights, "missing")
    recorded = read_metadata(weights).get(CONFIG_METADATA_KEY)
    if recorded is None:
        return
    try:
        made_for = ModelConfig.from_dict(json.loads(recorded))
    except (json.JSONDecodeError, TypeError, SwapfaceError) as exc:
        raise InputError(weights, f"unreadable model config in its header ({exc})") from None
    if made_for != config:
        changed = [f"{key} {value!r} (config.json says {getattr(config, key)!r})"
                   for key, value in made_for.to_dict().items() if getattr(config, key) != value]
        raise InputError(weights, "weights were made for another model: " + "; ".join(changed))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def face_backend(model_dir: str | Path, requested: str | None = None) -> str:
    """The face backend that made the model's training facesets, which swap must align faces with (the
    crops of another backend sit a little differently); `requested` other than that is an error."""
    faces = read_config_json(model_dir).get("training", {}).get("faces") or {}
    recorded = faces.get("backend", LEGACY_BACKEND)
    if requested is not None and requested != recorded:
        raise InputError(Path(model_dir) / CONFIG_FILE, f"the model was trained on faces of the {recorded} backend; "
                                                        f"swap with --backend {recorded} (or leave --backend out)")
    return recorded
