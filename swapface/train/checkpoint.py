"""Training checkpoints: ONE safetensors file holding weights, optimizer state and RNG states, with
the step and other JSON state in its header. One file, written to a temp name and renamed, so a
crash mid-write leaves the previous checkpoint whole and weights can never pair with the wrong step."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from swapface.errors import InputError
from swapface.modeldir import load_tensors, read_metadata, save_tensors

CHECKPOINT_FILE = "checkpoint.safetensors"
SNAPSHOT_DIR = "snapshots"
_STATE_KEY = "swapface_train_state"
_STATE_FIELDS = ("step", "lr_scale", "world_size", "faces", "optim_groups")  # what resuming reads
_DEVICE_FLAGS = ("fused", "foreach", "capturable", "differentiable")


def flatten(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{name}": t for name, t in tensors.items()}


def unflatten(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    start = prefix + "."
    return {name[len(start):]: t for name, t in tensors.items() if name.startswith(start)}


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """An optimizer's state as flat tensors plus its JSON-able param groups."""
    state = optimizer.state_dict()
    tensors = {f"{index}.{key}": value if torch.is_tensor(value) else torch.tensor(value)
               for index, entry in state["state"].items() for key, value in entry.items()}
    return tensors, state["param_groups"]


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for group, current in zip(groups, optimizer.param_groups, strict=False):
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        for key in _DEVICE_FLAGS:  # implementation choices of this run's device, not training state
            if key in current:
                group[key] = current[key]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], state: dict) -> None:
    save_tensors(path, tensors, metadata={_STATE_KEY: json.dumps(state)})


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, JSON state) of a checkpoint; damage is an InputError naming the file."""
    tensors = load_tensors(path, device)
    try:
        state = json.loads(read_metadata(path)[_STATE_KEY])
    except (KeyError, json.JSONDecodeError):
        raise InputError(path, "not a swapface training checkpoint (no training state in its header)") from None
    missing = [key for key in _STATE_FIELDS if not isinstance(state, dict) or key not in state]
    if missing:
        raise InputError(path, f"damaged training checkpoint: its header lacks {', '.join(missing)}")
    return tensors, state
