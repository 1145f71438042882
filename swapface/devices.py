"""Torch device names from the user, checked once for every stage (train, swap, eval)."""

from __future__ import annotations

import torch

from swapface.errors import SwapfaceError


def resolve_device(name: str | None) -> torch.device:
    """`name` (cpu, cuda, cuda:N; None or "auto": cuda when present, else cpu) as a device that exists here."""
    if name in (None, "", "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SwapfaceError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SwapfaceError(f"device {name!r} asked for, but torch sees no CUDA GPU here")
    return device


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU runs bf16 matrix maths natively (AMX or AVX512-BF16): there bf16 autocast trains
    2-3x faster than fp32; elsewhere it is emulated and slower. torch only offers private probes."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
