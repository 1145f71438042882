"""Stand-ins for PyAV, OpenImageIO and OpenColorIO on the bare GPU machine (bench/gpu.sh puts this folder on
PYTHONPATH when they are absent there).

Their wheels (PyAV alone is 36 MiB) do not fit beside the repository and the facesets in the 64 MiB that travel,
and the GPU benchmarks read no video or film frames: they only import modules that import these at the top and
build tables of their constants. Attributes are placeholders, and calling one fails loudly.
"""

from __future__ import annotations


class Missing:
    """A placeholder for `module.name`: fine in a table, an ImportError when called."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attribute: str) -> Missing:
        return Missing(f"{self.name}.{attribute}")

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise ImportError(f"{self.name}: not installed on this machine (bench/gpu.sh reads no video)")
