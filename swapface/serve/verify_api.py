"""`/api/verify`: the platform's side of `swapface verify`. Anyone signed in can check any video or image
(a file from elsewhere, uploaded, or one of their project's files) for Content Credentials, the
synthetic tag and the watermark, and gets the same verdict the command prints with `--json`."""

from __future__ import annotations

import json
import os
import secrets
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, HTTPException, Request, UploadFile

from swapface.errors import InputError, SwapfaceError
from swapface.provenance.verify import verify_file
from swapface.provenance.watermark import DEFAULT_KEY
from swapface.serve.api import data_dir, visible_file
from swapface.serve.auth import require_token
from swapface.serve.uploads import check_declared_size, display_name, identify, receive

router = APIRouter(prefix="/api", tags=["verify"], dependencies=[Depends(require_token)])
KEY_LIMIT = 200
# One verification at a time: each reads and searches a few dozen frames on the CPU, and a queue of
# them must not starve the jobs' workers.
_one_at_a_time = threading.Semaphore(1)


def _verdict(path: Path, name: str, key: str) -> dict[str, Any]:
    """The verdict as JSON, naming the file by the name the user knows (not the server's path)."""
    with _one_at_a_time:
        try:
            verdict = verify_file(path, key=key or DEFAULT_KEY)
        except SwapfaceError as exc:
            problem = exc.problem if isinstance(exc, InputError) else str(exc).replace(str(path), name)
            raise HTTPException(415, f"{name}: {problem}") from None
    out = json.loads(verdict.to_json())
    out["path"] = name
    return out


@router.post("/verify")
def verify_upload(request: Request, file: Annotated[UploadFile, File()],
                  key: Annotated[str, Form(max_length=KEY_LIMIT)] = "",
                  content_length: Annotated[int | None, Header()] = None) -> dict[str, Any]:
    """Verify an uploaded video or image (multipart field `file`); it is deleted once checked."""
    limit = request.app.state.config.max_upload
    check_declared_size(content_length, limit)
    name = display_name(file.filename)
    part = data_dir(request).uploads / f"verify-{secrets.token_hex(8)}.part"
    try:
        receive(file, part, name, limit)
        try:
            _, suffix = identify(part, name)
        except InputError as exc:
            raise HTTPException(415, f"{name}: {exc.problem}") from None
        named = part.with_suffix(suffix)  # the C2PA reader knows a file's format by its suffix
        os.replace(part, named)
        part = named
        return _verdict(part, name, key)
    finally:
        part.unlink(missing_ok=True)


@router.post("/files/{file_id}/verify")
def verify_stored(file_id: str, request: Request, key: Annotated[str, Form(max_length=KEY_LIMIT)] = ""
                  ) -> dict[str, Any]:
    """Verify a file the server already holds (an upload or a job's output)."""
    row = visible_file(request, file_id)
    if row.state != "ready":
        raise HTTPException(404, f"no file {file_id}")
    return _verdict(data_dir(request).resolve(row.path), row.name, key)
