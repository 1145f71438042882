"""Where things live under `serve --data DIR`: every path here is made by the server, never by a client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def faceset(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "faceset"

    def model(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "model"

    def report(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "report"

    def resolve(self, relative: str) -> Path:
        return self.root / relative

    def make(self) -> None:
        for folder in (self.files, self.uploads, self.root / "jobs"):
            folder.mkdir(parents=True, exist_ok=True)
