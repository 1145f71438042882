"""The job store: projects, files and jobs as SQL rows (SQLite by default, any SQLAlchemy URL for a team).

The server and its worker processes share it, so it is the one place a job's state lives: a killed
server finds every job and file where it left them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, event
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, create_engine, select

JOB_KINDS = ("extract", "train", "swap", "eval")
# queued -> running -> done | failed | cancelled; a training job can also be paused (and queued again)
JOB_STATES = ("queued", "running", "paused", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")


def new_id() -> str:
    """Server-made ids (random, so one cannot guess another's file)."""
    return uuid.uuid4().hex


class Project(SQLModel, table=True):
    __tablename__ = "projects"
    id: str = Field(default_factory=new_id, primary_key=True)
    name: str
    created: float = Field(default_factory=time.time)


class ProjectToken(SQLModel, table=True):
    """A token that reaches one project only (the server's own token reaches all). Only its SHA-256 is kept."""

    __tablename__ = "project_tokens"
    digest: str = Field(primary_key=True)
    project_id: str = Field(index=True)
    created: float = Field(default_factory=time.time)


class StoredFile(SQLModel, table=True):
    """An uploaded or generated file. `path` (relative to the data folder) is always made by the server;
    `name` is the client's name, kept for display and downloads only."""

    __tablename__ = "files"
    id: str = Field(default_factory=new_id, primary_key=True)
    project_id: str | None = Field(default=None, index=True)
    label: str | None = None  # what the file is for in its project, e.g. "a" or "b"
    name: str
    path: str
    kind: str  # video | image | html | json | pending (upload not finished)
    size: int  # bytes (the announced size while uploading)
    received: int = 0  # bytes on disk so far (resumable uploads)
    state: str = "ready"  # uploading | ready
    job_id: str | None = None  # the job that made it, for outputs
    created: float = Field(default_factory=time.time)


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    id: str = Field(default_factory=new_id, primary_key=True)
    project_id: str | None = Field(default=None, index=True)
    kind: str
    label: str | None = None  # what the job is for in its project, e.g. "a" (extract person A)
    state: str = Field(default="queued", index=True)
    progress: float = 0.0
    inputs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    outputs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    info: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))  # live details (step, rate, eta)
    error: str | None = None
    control: str | None = None  # "stop": end a training job early, keeping its model
    device: str | None = None
    created: float = Field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL lets the server read while a worker writes; the busy timeout makes writers wait, not fail."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`, with the tables created."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    SQLModel.metadata.create_all(engine)
    return engine


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'swapface.sqlite'}"


class Store:
    """Short transactions on the shared database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def get_job(self, job_id: str) -> Job | None:
        with self.session() as s:
            return s.get(Job, job_id)

    def get_file(self, file_id: str) -> StoredFile | None:
        with self.session() as s:
            return s.get(StoredFile, file_id)

    def add(self, row: SQLModel) -> SQLModel:
        with self.session() as s:
            s.add(row)
            s.commit()
            s.refresh(row)
            return row

    def update_job(self, job_id: str, only_if_state: tuple[str, ...] | None = None, **values: Any) -> bool:
        """Set fields of a job; with `only_if_state`, only while it is in one of those states."""
        with self.session() as s:
            job = s.get(Job, job_id, with_for_update=True)
            if job is None or (only_if_state is not None and job.state not in only_if_state):
                return False
            for key, value in values.items():
                setattr(job, key, value)
            s.add(job)
            s.commit()
            return True

    def jobs(self, states: tuple[str, ...] | None = None, project_id: str | None = None) -> list[Job]:
        with self.session() as s:
            query = select(Job).order_by(Job.created)
            if states is not None:
                query = query.where(Job.state.in_(states))
            if project_id is not None:
                query = query.where(Job.project_id == project_id)
            return list(s.exec(query).all())

    def files(self, project_id: str | None = None) -> list[StoredFile]:
        with self.session() as s:
            query = select(StoredFile).order_by(StoredFile.created)
            if project_id is not None:
                query = query.where(StoredFile.project_id == project_id)
            return list(s.exec(query).all())

    def requeue_interrupted(self) -> int:
        """At start-up: jobs left running by a killed server run again (training resumes its checkpoint)."""
        return sum(self.update_job(job.id, only_if_state=("running",), state="queued", device=None, control=None)
                   for job in self.jobs(("running",)))
