"""Crash-safe file writes: write to a temporary name in the same folder, then rename over the target."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from swapface.errors import InputError


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str | None = None,
                finalize: Callable[[Path, Path], None] | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success fsync and rename it onto `target`.

    The temporary name keeps the target's extension, so tools that pick a format from it (PyAV,
    OpenCV) write the right format.

    On any exception the temporary file is removed and `target` is left as it was, so readers never
    see a half-written file under the final name. `finalize(tmp, target)` runs on the finished
    temporary file just before the rename (e.g. to sign it), so the final name only ever holds its
    result.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix if suffix is not None else ".part" + target.suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if finalize is not None:
            finalize(tmp, target)
        _plain_mode(tmp, 0o666)  # mkstemp (and some writers, e.g. safetensors) make owner-only files
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _plain_mode(path: Path, mode: int) -> None:
    """Give a file or folder made owner-only by mkstemp/mkdtemp the mode a plain open()/mkdir() would."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


@contextlib.contextmanager
def atomic_folder(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder next to `target`; rename it onto `target` (absent or empty) on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        yield tmp
        _plain_mode(tmp, 0o777)
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def check_folder_writable(folder: str | Path) -> None:
    """Fail early, with one line, when files cannot be created in `folder` (or, if it does not exist
    yet, in the nearest folder above it, where it would be made).

    Probes with a scratch file: permission bits alone do not tell (root, read-only mounts, pseudo file
    systems). Creates nothing that outlives the check.
    """
    folder = Path(folder)
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise InputError(existing, "is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise InputError(existing, f"is not writable ({exc.strerror or exc.__class__.__name__})") from None


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    """Write `data` to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `target` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))
