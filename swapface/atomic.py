"""Crash-safe file writes: write to a temporary name in the same folder, then rename over the target."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
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
    remove_stale_temporaries(target.parent, target.name)
    fd, tmp_name = tempfile.mkstemp(
        prefix=_temp_prefix(target), suffix=suffix if suffix is not None else ".part" + target.suffix,
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


# Temporary names say who writes them: `.<target name>.<pid>@<host>.<random>.part[.ext]`. A process
# killed with SIGKILL cannot clean up after itself; the next write of the same target (or a resumed
# extraction, for a whole faceset folder) removes temporaries whose writer on this host is gone.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[^.]+\.part(\.[^.]*)?$")


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}@{_HOST}."


def _writer_is_gone(pid: int) -> bool:
    if pid == os.getpid():  # a reused pid: this process never leaves its own temporaries behind
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def remove_stale_temporaries(folder: str | Path, name: str | None = None) -> int:
    """Remove temporaries in `folder` (of the target `name`, or of any target) left by writers on this
    host that no longer run; another host's or a live writer's are left alone. Returns how many went."""
    folder = Path(folder)
    removed = 0
    try:
        entries = list(folder.iterdir())
    except OSError:
        return 0
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match is None or (name is not None and match["name"] != name) or match["host"] != _HOST:
            continue
        if not _writer_is_gone(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
    return removed


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
    remove_stale_temporaries(target.parent, target.name)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".part", dir=target.parent))
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
