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
from fastapi.concurrency import run_in_threadpool

from swapface.errors import InputError, SwapfaceError
from swapface.provenance.verify import verify_file
from swapface.provenance.watermark import DEFAULT_KEY
from swapface.serve.api import COPY_CHUNK, MULTIPART_OVERHEAD, data_dir, visible_file
from swapface.serve.auth import require_token
from swapface.serve.uploads import display_name, identify

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
async def verify_upload(request: Request, file: Annotated[UploadFile, File()],
                        key: Annotated[str, Form(max_length=KEY_LIMIT)] = "",
                        content_length: Annotated[int | None, Header()] = None) -> dict[str, Any]:
    """Verify an uploaded video or image (multipart field `file`); it is deleted once checked."""
    limit = request.app.state.config.max_upload
    if content_length is not None and content_length > limit + MULTIPART_OVERHEAD:
        raise HTTPException(413, f"upload is larger than the server's limit of {limit} bytes")
    name = display_name(file.filename)
    part = data_dir(request).uploads / f"verify-{secrets.token_hex(8)}.part"
    try:
        size = 0
        with open(part, "wb") as out:
            while chunk := await file.read(COPY_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"upload is larger than the server's limit of {limit} bytes")
                out.write(chunk)
        if size == 0:
            raise HTTPException(415, f"{name}: is empty")
        try:
            _, suffix = await run_in_threadpool(identify, part, name)
        except InputError as exc:
            raise HTTPException(415, f"{name}: {exc.problem}") from None
        named = part.with_suffix(suffix)  # the C2PA reader knows a file's format by its suffix
        os.replace(part, named)
        part = named
        return await run_in_threadpool(_verdict, part, name, key)
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
