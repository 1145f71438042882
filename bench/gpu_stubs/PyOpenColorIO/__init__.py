"""Stand-in for PyOpenColorIO on the bare GPU machine: see bench/gpu_stubs/missing.py."""

from missing import Missing


def __getattr__(name: str) -> Missing:
    return Missing(f"PyOpenColorIO.{name}")
