"""How a server runs: decided once by `swapface serve` (or a test) and kept on `app.state.config`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_UPLOAD = 4 * 1024**3
CHUNK_LIMIT = 64 * 1024**2  # largest body of one resumable-upload chunk


@dataclass(frozen=True)
class ServeConfig:
    data: Path
    token: str
    max_upload: int = DEFAULT_MAX_UPLOAD
    db_url: str | None = None  # None: SQLite under `data`
    cpu_jobs: int = 1
    gpus: tuple[str, ...] | None = None  # None: every CUDA device torch sees
    run_jobs: bool = True  # False: an API-only app (tests that drive the scheduler themselves)
    ray: str | None = None  # a Ray cluster's address: jobs run there as tasks instead of local processes
