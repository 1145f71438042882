"""The worker process that runs one job (started by the scheduler with multiprocessing's spawn).

Kept light at import time: the parent only needs `run_job` by name. The worker holds a lock on its
job folder while it runs, so a restarted server never runs a job twice at once (a worker left over
from a killed server finishes saving first), and it stops itself (SIGTERM: training saves a
checkpoint) when the server that started it is gone.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from pathlib import Path

from swapface.workers import on_parent_exit

STORE_CHECK_SECONDS = 1.0


def _stop_when_asked(store, job_id: str, finished: threading.Event) -> None:
    """SIGTERM this worker (training saves first) once the job store says the job should stop, until
    the job has `finished`: how a worker on a cluster node, which no local signal reaches, hears a pause,
    stop or cancel."""
    def watch() -> None:
        while not finished.wait(STORE_CHECK_SECONDS):
            try:
                job = store.get_job(job_id)
            except Exception:  # a database hiccup: ask again next time
                continue
            if job is None or job.state != "running" or job.control == "stop":
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, daemon=True, name="stop-watch").start()


def run_job(data_root: str, db_url: str, job_id: str, device: str, parent: int | None, threads: int) -> None:
    """Run job `job_id` on `device`; the final state is written only if the job is still `running`
    (a cancel or pause from the API wins over a late finish). `parent`: the local server's pid, whose
    end stops the worker (None for a Ray task, which outlives no local parent)."""
    if parent is not None:  # a server gone: stop as if it asked (SIGTERM: training saves first)
        on_parent_exit(parent, lambda: os.kill(os.getpid(), signal.SIGTERM))
    import torch

    torch.set_num_threads(threads)
    from swapface.jobs.layout import DataDir
    from swapface.jobs.stages import RUNNERS, Reporter
    from swapface.jobs.store import Store

    data, store = DataDir(Path(data_root)), Store(db_url)
    folder = data.job_dir(job_id)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        job = store.get_job(job_id)
        if job is None or job.state != "running":
            return
        finished = threading.Event()
        if parent is None:
            _stop_when_asked(store, job_id, finished)
        try:
            outputs = RUNNERS[job.kind](store, data, job, device, Reporter(store, job_id))
        except Exception as exc:  # every failure becomes the job's one-line error, never a dead worker row
            finished.set()
            store.update_job(job_id, only_if_state=("running",), state="failed", error=_one_line(exc),
                             finished=time.time())
            return
        finished.set()
        if outputs is not None:
            store.update_job(job_id, only_if_state=("running",), state="done", progress=1.0, outputs=outputs,
                             finished=time.time())


def _one_line(exc: BaseException) -> str:
    from swapface.errors import SwapfaceError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, SwapfaceError):
        return text
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
