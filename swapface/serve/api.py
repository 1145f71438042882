"""The job API under /api: projects, files (whole or in resumable chunks), jobs and their live state.

The web UI uses only these routes, so anything the UI does a script can do too.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import re
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, HTTPException, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlmodel import select

from swapface.jobs.layout import DataDir
from swapface.jobs.options import parse
from swapface.jobs.scheduler import finish_stopped_training
from swapface.jobs.store import FINAL_STATES, JOB_KINDS, Job, Project, ProjectToken, Store, StoredFile
from swapface.serve.auth import COOKIE, EVERYTHING, require_token, token_digest, token_matches
from swapface.serve.config import CHUNK_LIMIT
from swapface.serve.uploads import accept, check_declared_size, check_label, display_name, receive, too_large

FACE_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.png$")
SSE_POLL_SECONDS = 0.5
SSE_KEEPALIVE_SECONDS = 15.0

public = APIRouter(prefix="/api", tags=["health"])
api = APIRouter(prefix="/api", dependencies=[Depends(require_token)])


def _store(request: Request) -> Store:
    return request.app.state.store


def data_dir(request: Request) -> DataDir:
    return request.app.state.data


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectIn(_Strict):
    name: str = Field(min_length=1, max_length=200)


class JobIn(_Strict):
    kind: str
    inputs: dict[str, Any]
    options: dict[str, Any] = Field(default_factory=dict)
    project: str | None = Field(None, max_length=64)
    label: str | None = Field(None, max_length=32)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in JOB_KINDS:
            raise ValueError(f"kind must be one of {', '.join(JOB_KINDS)}")
        return value


class UploadIn(_Strict):
    name: str = Field(min_length=1, max_length=1000)
    size: int = Field(gt=0)
    project: str | None = Field(None, max_length=64)
    label: str | None = Field(None, max_length=32)


class SessionIn(_Strict):
    token: str = Field(min_length=1, max_length=1000)


def job_json(job: Job) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "state": job.state, "progress": round(job.progress, 4),
            "outputs": job.outputs, "error": job.error, "inputs": job.inputs, "options": job.options,
            "info": job.info, "project": job.project_id, "label": job.label, "device": job.device,
            "created": job.created, "started": job.started, "finished": job.finished, "stopping": job.control == "stop"}


def file_json(row: StoredFile) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "kind": row.kind, "size": row.size, "received": row.received,
            "state": row.state, "label": row.label, "project": row.project_id, "job": row.job_id,
            "created": row.created}


def _scope(request: Request) -> str | None:
    """The one project this request's token may see, or None for the server's token (all of them)."""
    scope = request.state.scope
    return None if scope == EVERYTHING else scope


def _check_visible(request: Request, project_id: str | None, what: str) -> None:
    """Another project's rows answer 404 to a project token, exactly like rows that do not exist."""
    scope = _scope(request)
    if scope is not None and project_id != scope:
        raise HTTPException(404, f"no {what}")


def _project(request: Request, project_id: str | None) -> str | None:
    """The project a new row goes to: the one named (it must exist and be visible), or the token's own."""
    project_id = project_id if project_id is not None else _scope(request)
    if project_id is not None:
        _check_visible(request, project_id, f"project {project_id}")
        with _store(request).session() as s:
            if s.get(Project, project_id) is None:
                raise HTTPException(404, f"no project {project_id}")
    return project_id


def _visible(row: Job | StoredFile | None, request: Request, what: str) -> Job | StoredFile:
    """A row this request may see; a missing row and another project's row both answer 404."""
    if row is None:
        raise HTTPException(404, f"no {what}")
    _check_visible(request, row.project_id, what)
    return row


def visible_job(request: Request, job_id: str) -> Job:
    return _visible(_store(request).get_job(job_id), request, f"job {job_id}")


def visible_file(request: Request, file_id: str) -> StoredFile:
    return _visible(_store(request).get_file(file_id), request, f"file {file_id}")


# -- health and session --------------------------------------------------------------------------

@public.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@public.post("/session", status_code=204)
def login(body: SessionIn, request: Request, response: Response) -> None:
    """Trade the token for the UI's cookie (HttpOnly, SameSite=Strict)."""
    with _store(request).session() as s:
        project_token = s.get(ProjectToken, token_digest(body.token)) is not None
    if not (token_matches(body.token, request.app.state.config.token) or project_token):
        raise HTTPException(401, "wrong access token", headers={"WWW-Authenticate": "Bearer"})
    response.set_cookie(COOKIE, body.token, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        max_age=30 * 24 * 3600)


@public.delete("/session", status_code=204)
def logout(response: Response) -> None:
    response.delete_cookie(COOKIE)


# -- projects ------------------------------------------------------------------------------------

@api.post("/projects", status_code=201)
def create_project(body: ProjectIn, request: Request) -> dict[str, Any]:
    if _scope(request) is not None:
        raise HTTPException(403, "a project token cannot make projects")
    project = _store(request).add(Project(name=body.name.strip()))
    return {"id": project.id, "name": project.name, "created": project.created}


@api.get("/projects")
def list_projects(request: Request) -> list[dict[str, Any]]:
    with _store(request).session() as s:
        query = select(Project).order_by(Project.created.desc())
        if _scope(request) is not None:
            query = query.where(Project.id == _scope(request))
        return [{"id": p.id, "name": p.name, "created": p.created} for p in s.exec(query).all()]


@api.post("/projects/{project_id}/tokens", status_code=201)
def create_project_token(project_id: str, request: Request) -> dict[str, str]:
    """A token for one project (shown once; only its hash is kept): its holder sees that project only."""
    if _scope(request) is not None:
        raise HTTPException(403, "only the server's token makes project tokens")
    _project(request, project_id)
    token = secrets.token_urlsafe(32)
    _store(request).add(ProjectToken(digest=token_digest(token), project_id=project_id))
    return {"token": token, "project": project_id}


@api.get("/projects/{project_id}")
def get_project(project_id: str, request: Request) -> dict[str, Any]:
    store = _store(request)
    _check_visible(request, project_id, f"project {project_id}")
    with store.session() as s:
        project = s.get(Project, project_id)
    if project is None:
        raise HTTPException(404, f"no project {project_id}")
    return {"id": project.id, "name": project.name, "created": project.created,
            "files": [file_json(f) for f in store.files(project_id)],
            "jobs": [job_json(j) for j in store.jobs(project_id=project_id)]}


# -- files ---------------------------------------------------------------------------------------

@api.post("/files", status_code=201)
def upload_file(request: Request, file: Annotated[UploadFile, File()],
                project: Annotated[str | None, Form(max_length=64)] = None,
                label: Annotated[str | None, Form(max_length=32)] = None,
                content_length: Annotated[int | None, Header()] = None) -> dict[str, Any]:
    """Upload a whole video or image (multipart field `file`); for big files use /api/uploads."""
    config, store, data = request.app.state.config, _store(request), data_dir(request)
    check_declared_size(content_length, config.max_upload)
    row = StoredFile(project_id=_project(request, project), label=check_label(label),
                     name=display_name(file.filename), path="", kind="pending", size=0, state="uploading")
    part = data.uploads / f"{row.id}.part"
    row.received = row.size = receive(file, part, row.name, config.max_upload)
    return file_json(accept(store, data, part, row))


@api.get("/files")
def list_files(request: Request, project: Annotated[str | None, Query(max_length=64)] = None
               ) -> list[dict[str, Any]]:
    return [file_json(f) for f in _store(request).files(_scope(request) or project)]


@api.get("/files/{file_id}/info")
def file_info(file_id: str, request: Request) -> dict[str, Any]:
    return file_json(visible_file(request, file_id))


@api.get("/files/{file_id}")
def download_file(file_id: str, request: Request, download: bool = False) -> FileResponse:
    """The file's bytes (range requests work, so videos seek); `?download=true` asks to save it."""
    row = visible_file(request, file_id)
    if row.state != "ready":
        raise HTTPException(404, f"no file {file_id}")
    path = data_dir(request).resolve(row.path)
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'; "
               "img-src data:; style-src 'unsafe-inline'"}
    return FileResponse(path, media_type=media_type, filename=row.name, headers=headers,
                        content_disposition_type="attachment" if download else "inline")


# -- resumable uploads ---------------------------------------------------------------------------

@api.post("/uploads", status_code=201)
def start_upload(body: UploadIn, request: Request) -> dict[str, Any]:
    """Announce a file of `size` bytes; then send it in pieces with PATCH, from any offset the server has."""
    config, store, data = request.app.state.config, _store(request), data_dir(request)
    if body.size > config.max_upload:
        raise too_large(config.max_upload)
    row = StoredFile(project_id=_project(request, body.project), label=check_label(body.label),
                     name=display_name(body.name), path="", kind="pending", size=body.size, state="uploading")
    row.path = f"uploads/{row.id}.part"
    (data.resolve(row.path)).touch()
    store.add(row)
    return {"id": row.id, "offset": 0, "size": row.size, "done": False}


@api.get("/uploads/{upload_id}")
def upload_status(upload_id: str, request: Request) -> dict[str, Any]:
    """Where to resume: the bytes the server holds."""
    row = visible_file(request, upload_id)
    done = row.state == "ready"
    offset = row.size if done else data_dir(request).resolve(row.path).stat().st_size
    status = {"id": row.id, "offset": offset, "size": row.size, "done": done}
    return {**status, "file": file_json(row)} if done else status


@api.patch("/uploads/{upload_id}")
async def upload_chunk(upload_id: str, request: Request, upload_offset: Annotated[int, Header(ge=0)]
                       ) -> dict[str, Any]:
    """Append the body at `Upload-Offset` (which must equal the bytes held: 409 tells the right one)."""
    row = await run_in_threadpool(visible_file, request, upload_id)
    lock = _UPLOAD_LOCKS.setdefault(upload_id, asyncio.Lock())
    if lock.locked():
        raise HTTPException(409, "another piece of this upload is being received")
    async with lock:
        try:
            return await _append(request, row, upload_offset)
        finally:
            _UPLOAD_LOCKS.pop(upload_id, None)


_UPLOAD_LOCKS: dict[str, asyncio.Lock] = {}  # one piece at a time per upload (the server is one process)


async def _append(request: Request, row: StoredFile, upload_offset: int) -> dict[str, Any]:
    store, data = _store(request), data_dir(request)
    row = await run_in_threadpool(visible_file, request, row.id)  # read again under the lock
    if row.state == "ready":
        raise HTTPException(409, "upload already complete")
    part = data.resolve(row.path)
    held = part.stat().st_size
    if upload_offset != held:
        raise HTTPException(409, f"offset {upload_offset} does not match the {held} bytes held",
                            headers={"Upload-Offset": str(held)})
    written = 0
    with open(part, "ab") as out:
        async for chunk in request.stream():
            written += len(chunk)
            if written > CHUNK_LIMIT or held + written > row.size:
                out.truncate(held)
                raise HTTPException(413, "chunk runs past the announced size or the chunk limit")
            out.write(chunk)
    offset = held + written
    await run_in_threadpool(_set_received, store, row.id, offset)
    if offset < row.size:
        return {"id": row.id, "offset": offset, "size": row.size, "done": False}
    row.received = offset
    accepted = await run_in_threadpool(accept, store, data, part, row)
    return {"id": row.id, "offset": offset, "size": row.size, "done": True, "file": file_json(accepted)}


def _set_received(store: Store, file_id: str, received: int) -> None:
    with store.session() as s:
        row = s.get(StoredFile, file_id)
        if row is not None:
            row.received = received
            s.add(row)
            s.commit()


# -- jobs ----------------------------------------------------------------------------------------

def _check_references(request: Request, kind: str, inputs: BaseModel) -> None:
    """Inputs must name existing, visible files and jobs of the right kinds (their states are the scheduler's)."""
    store, scope = _store(request), _scope(request)

    def need_file(file_id: str, kinds: tuple[str, ...]) -> None:
        row = store.get_file(file_id)
        if row is None or row.state != "ready" or row.kind not in kinds or scope not in (None, row.project_id):
            raise HTTPException(422, f"inputs: {file_id} is not an uploaded {' or '.join(kinds)}")

    def need_job(job_id: str, job_kind: str) -> None:
        job = store.get_job(job_id)
        if job is None or job.kind != job_kind or scope not in (None, job.project_id):
            raise HTTPException(422, f"inputs: {job_id} is not a job of kind {job_kind}")

    if kind == "extract":
        for file_id in inputs.files:
            need_file(file_id, ("video", "image"))
    elif kind == "train":
        need_job(inputs.a, "extract")
        need_job(inputs.b, "extract")
    elif kind == "swap":
        need_job(inputs.model, "train")
        need_file(inputs.video, ("video",))
    else:
        need_job(inputs.swap, "swap")


@api.post("/jobs", status_code=201)
def create_job(body: JobIn, request: Request) -> dict[str, Any]:
    """Queue a job; it starts when its input jobs are done and a device is free."""
    store = _store(request)
    try:
        inputs, options = parse(body.kind, body.inputs, body.options)
    except ValidationError as exc:
        raise HTTPException(422, [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]) from None
    _check_references(request, body.kind, inputs)
    job = store.add(Job(project_id=_project(request, body.project), kind=body.kind, label=check_label(body.label),
                        inputs=inputs.model_dump(), options=options.model_dump(exclude_unset=True)))
    return job_json(job)


@api.get("/jobs")
def list_jobs(request: Request, project: Annotated[str | None, Query(max_length=64)] = None,
              kind: Annotated[str | None, Query(max_length=16)] = None) -> list[dict[str, Any]]:
    jobs = _store(request).jobs(project_id=_scope(request) or project)
    return [job_json(j) for j in jobs if kind is None or j.kind == kind]


@api.get("/jobs/{job_id}")
def get_job(job_id: str, request: Request) -> dict[str, Any]:
    return job_json(visible_job(request, job_id))


@api.get("/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request) -> StreamingResponse:
    """Server-sent events: one `job` event (the job's JSON) whenever it changes, until it ends."""
    store = _store(request)
    await run_in_threadpool(visible_job, request, job_id)

    async def stream():
        last, quiet = None, 0.0
        while not await request.is_disconnected():
            job = await run_in_threadpool(store.get_job, job_id)
            if job is None:
                return
            payload = json.dumps(job_json(job))
            if payload != last:
                last, quiet = payload, 0.0
                yield f"event: job\ndata: {payload}\n\n"
            elif quiet >= SSE_KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ": keep-alive\n\n"
            if job.state in FINAL_STATES:
                return
            await asyncio.sleep(SSE_POLL_SECONDS)
            quiet += SSE_POLL_SECONDS

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@api.delete("/jobs/{job_id}")
def cancel_job(job_id: str, request: Request) -> dict[str, Any]:
    """Cancel a queued, running or paused job (a running worker is stopped; training saves first)."""
    store = _store(request)
    job = visible_job(request, job_id)
    if job.state in FINAL_STATES:
        raise HTTPException(409, f"job is already {job.state}")
    store.update_job(job_id, only_if_state=("queued", "running", "paused"), state="cancelled", finished=time.time())
    return job_json(visible_job(request, job_id))


def _train_job(request: Request, job_id: str) -> Job:
    job = visible_job(request, job_id)
    if job.kind != "train":
        raise HTTPException(409, "only training jobs pause, resume and stop early")
    return job


@api.post("/jobs/{job_id}/pause")
def pause_job(job_id: str, request: Request) -> dict[str, Any]:
    """Pause training: the worker saves a checkpoint and exits; resume continues from it."""
    store = _store(request)
    _train_job(request, job_id)
    if not store.update_job(job_id, only_if_state=("queued", "running"), state="paused"):
        raise HTTPException(409, "only a queued or running job can pause")
    return job_json(visible_job(request, job_id))


@api.post("/jobs/{job_id}/resume")
def resume_job(job_id: str, request: Request) -> dict[str, Any]:
    store = _store(request)
    _train_job(request, job_id)
    if not store.update_job(job_id, only_if_state=("paused",), state="queued"):
        raise HTTPException(409, "only a paused job can resume")
    return job_json(visible_job(request, job_id))


@api.post("/jobs/{job_id}/stop")
def stop_job(job_id: str, request: Request) -> dict[str, Any]:
    """End training now, keeping the model as trained so far (the job ends done)."""
    store = _store(request)
    job = _train_job(request, job_id)
    if job.state in ("queued", "paused"):  # not training now: keep what a paused run saved
        finish_stopped_training(store, data_dir(request), job)
    elif not store.update_job(job_id, only_if_state=("running",), control="stop"):
        raise HTTPException(409, f"job is already {job.state}")
    return job_json(visible_job(request, job_id))


# -- what a job made: faces, training curves and previews ----------------------------------------

def _faceset_dir(request: Request, job_id: str) -> Path:
    job = visible_job(request, job_id)
    if job.kind != "extract":
        raise HTTPException(409, "faces belong to extract jobs")
    return data_dir(request).faceset(job_id)


@api.get("/jobs/{job_id}/faces")
def list_faces(job_id: str, request: Request) -> dict[str, Any]:
    from swapface.faceset.store import Faceset, is_faceset

    folder = _faceset_dir(request, job_id)
    if not is_faceset(folder):
        return {"count": 0, "faces": []}
    with Faceset.open(folder) as faceset:
        records = faceset.records()
    return {"count": len(records), "faces": [{"name": r.filename, "source": Path(r.source).name, "frame": r.frame}
                                             for r in records]}


def _face_path(request: Request, job_id: str, name: str) -> Path:
    if not FACE_NAME.match(name):
        raise HTTPException(404, "no such face")
    path = _faceset_dir(request, job_id) / name
    if not path.is_file():
        raise HTTPException(404, "no such face")
    return path


@api.get("/jobs/{job_id}/faces/{name}")
def get_face(job_id: str, name: str, request: Request) -> FileResponse:
    return FileResponse(_face_path(request, job_id, name), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})


@api.delete("/jobs/{job_id}/faces/{name}")
def delete_face(job_id: str, name: str, request: Request) -> dict[str, Any]:
    """Drop a bad face from the faceset (training started after this leaves it out)."""
    if visible_job(request, job_id).state == "running":
        raise HTTPException(409, "wait until extraction is done")
    _face_path(request, job_id, name).unlink()
    return list_faces(job_id, request)


def _model_dir(request: Request, job_id: str) -> Path:
    job = visible_job(request, job_id)
    if job.kind != "train":
        raise HTTPException(409, "curves and previews belong to training jobs")
    return data_dir(request).model(job_id)


@api.get("/jobs/{job_id}/metrics")
def train_metrics(job_id: str, request: Request, after: Annotated[int, Query(ge=0)] = 0) -> list[dict[str, Any]]:
    """Logged training steps after step `after` (losses, img/s, and held-out metrics when enabled)."""
    from swapface.train.loop import METRICS_FILE

    path = _model_dir(request, job_id) / METRICS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line being written right now
            continue
        if row.get("step", 0) > after:
            rows.append(row)
    return rows[-2000:]


@api.get("/jobs/{job_id}/preview")
def train_preview(job_id: str, request: Request) -> FileResponse:
    """The newest preview grid (rows: A->A, A->B, B->B, B->A)."""
    from swapface.train.loop import PREVIEW_DIR

    previews = sorted((_model_dir(request, job_id) / PREVIEW_DIR).glob("step-*.png"))
    if not previews:
        raise HTTPException(404, "no preview yet")
    return FileResponse(previews[-1], media_type="image/png", headers={"Cache-Control": "no-store"})

