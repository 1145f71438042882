"""A real `swapface serve` process for tests and benchmarks, and small API helpers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

TOKEN = "test-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m swapface.cli.main serve` on a free port; its output goes to `log`."""

    def __init__(self, data: Path, *extra: str, port: int | None = None) -> None:
        self.data, self.extra, self.port = Path(data), extra, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = self.data.parent / f"{self.data.name}-serve.log"

    def start(self, timeout: float = 60.0) -> Server:
        env = {**os.environ, "SWAPFACE_TOKEN": TOKEN, "OMP_NUM_THREADS": "1"}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "swapface.cli.main", "serve", "--data", str(self.data),
                 "--port", str(self.port), *self.extra], stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"serve did not answer within {timeout} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)


def upload(client: httpx.Client, path: Path, **form: str) -> str:
    with open(path, "rb") as fh:
        response = client.post("/api/files", files={"file": (path.name, fh, "video/mp4")}, data=form)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def submit(client: httpx.Client, kind: str, inputs: dict, options: dict | None = None) -> str:
    response = client.post("/api/jobs", json={"kind": kind, "inputs": inputs, "options": options or {}})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def wait_for(client: httpx.Client, job_id: str, until=lambda job: job["state"] in ("done", "failed", "cancelled"),
             timeout: float = 600.0) -> dict:
    """Poll a job until `until` holds; fail after `timeout` seconds without progress.

    The clock restarts whenever the job moves (state, progress or training step), so a slow or busy machine only
    slows the test down, while a job that hangs still fails it."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if until(job):
            return job
        moved = (job["state"], job.get("progress"), job.get("info", {}).get("step"))
        if moved != last:
            deadline, last = time.monotonic() + timeout, moved
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} made no progress for {timeout} s: {job}")
