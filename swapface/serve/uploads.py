"""Accepting files: size limit, content probing, server-made names.

A client's file name is only ever shown, never used as a path: bytes land in `uploads/<id>.part`,
are probed by content (Pillow/OpenCV for images, PyAV for videos, the same readers the stages use),
and move to `files/<id><suffix>` with a suffix chosen from the detected format.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

import av
from fastapi import HTTPException, UploadFile
from PIL import Image

from swapface.errors import InputError
from swapface.jobs.layout import DataDir
from swapface.jobs.store import Store, StoredFile
from swapface.media import probe

MULTIPART_OVERHEAD = 64 * 1024  # what a multipart body may add to the file's own bytes in Content-Length
COPY_CHUNK = 1024 * 1024
IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}
LABEL = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'500M', '4G', '1048576' -> bytes (binary units)."""
    match = SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (e.g. 500M, 4G)")
    return int(float(match.group(1)) * 1024 ** " kmgt".index(match.group(2).lower() or " "))


def display_name(name: str | None) -> str:
    """The client's name for display: its last path part, printable characters only, at most 200."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip().lstrip(".")
    return base[:200] or "upload"


def check_label(label: str | None) -> str | None:
    if label is not None and not LABEL.match(label):
        raise HTTPException(422, "label: letters, digits, - and _ only, at most 32")
    return label


def too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"upload is larger than the server's limit of {limit} bytes")


def check_declared_size(content_length: int | None, limit: int) -> None:
    """Refuse a whole-file upload (413) by its Content-Length, before any byte is read."""
    if content_length is not None and content_length > limit + MULTIPART_OVERHEAD:
        raise too_large(limit)


def receive(file: UploadFile, part: Path, name: str, limit: int) -> int:
    """Copy a whole uploaded file to `part`; returns its size. Past `limit` bytes (413) or empty (415) it is
    refused and nothing is left at `part`."""
    size = 0
    try:
        with open(part, "wb") as out:
            while chunk := file.file.read(COPY_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                out.write(chunk)
        if size == 0:
            raise HTTPException(415, f"{name}: is empty")
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return size


def _video_suffix(path: Path, name: str) -> str:
    """A suffix for the container PyAV found (the client's own only where the container allows it)."""
    with av.open(str(path)) as container:
        formats = container.format.name.split(",")
    wanted = Path(name).suffix.lower()
    if "mp4" in formats:
        return ".mov" if wanted == ".mov" else ".mp4"
    if "matroska" in formats:
        return ".webm" if wanted == ".webm" else ".mkv"
    return ".avi" if "avi" in formats else ".mkv"


def identify(path: Path, name: str) -> tuple[str, str]:
    """(kind, suffix) of an uploaded file from its content; InputError when it is not media we read."""
    try:
        with Image.open(path) as image:
            image_format = image.format
    except (OSError, Image.DecompressionBombError, ValueError):
        image_format = None
    if image_format in IMAGE_FORMATS:
        return "image", IMAGE_FORMATS[image_format]
    info = probe(path)  # a video (the .part suffix is no image suffix): opens, decodes a frame, demuxes all
    if info.kind != "video":
        raise InputError(name, "is not a video or image")
    return "video", _video_suffix(path, name)


def accept(store: Store, data: DataDir, part: Path, row: StoredFile) -> StoredFile:
    """Probe a fully received file and move it into files/; a file that is not media is deleted (415)."""
    try:
        kind, suffix = identify(part, row.name)
        target = data.files / f"{row.id}{suffix}"
        os.replace(part, target)
        if kind == "image":
            probe(target)  # decodes it with the reader the stages use
    except InputError as exc:
        part.unlink(missing_ok=True)
        for leftover in data.files.glob(f"{row.id}.*"):
            leftover.unlink()
        with store.session() as s:
            existing = s.get(StoredFile, row.id)
            if existing is not None:
                s.delete(existing)
                s.commit()
        raise HTTPException(415, f"{row.name}: {exc.problem}") from None
    row.kind, row.path, row.state = kind, f"files/{target.name}", "ready"
    row.size = row.received = target.stat().st_size
    with store.session() as s:
        merged = s.merge(row)
        s.commit()
        s.refresh(merged)
        return merged
