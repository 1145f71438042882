"""The one check every command that writes runs before any work: its outputs must not be its inputs.

A command's outputs are written under a temporary name and renamed over the final one, so an output
that *is* an input (by the same path, a `..` detour, a symbolic link or a hard link) would silently
replace the user's footage or faceset. Folder outputs (facesets, frame folders, patch exports) must
not hold an input either: extracting a faceset into itself would add crops of its own crops.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from swapface.errors import InputError


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when both paths name one file or folder (same path after links, or the same inode)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """True when `path` is `folder` or lies somewhere below it (after resolving links)."""
    inner, outer = os.path.realpath(path), os.path.realpath(folder)
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def check_outputs(inputs: Iterable[str | Path | None], files: Iterable[str | Path | None] = (),
                  folders: Iterable[str | Path | None] = ()) -> None:
    """Refuse, with one line naming the output, an output file that is an input, an output folder that
    is or holds an input, and two outputs in the same place. `None` entries (options not given) are
    skipped."""
    sources = [Path(p) for p in inputs if p is not None]
    out_files = [Path(p) for p in files if p is not None]
    out_folders = [Path(p) for p in folders if p is not None]
    for output in out_files:
        for source in sources:
            if same_file(output, source):
                raise InputError(output, f"is the input {source}: writing it would destroy the input; "
                                         "choose another output name")
    for output in out_folders:
        for source in sources:
            if is_inside(source, output):
                what = "is" if same_file(source, output) else "holds"
                raise InputError(output, f"{what} the input {source}: choose another output folder")
    outputs = out_files + out_folders
    for i, first in enumerate(outputs):
        for second in outputs[i + 1:]:
            if same_file(first, second):
                raise InputError(second, f"is also the output {first}: give each output its own place")
