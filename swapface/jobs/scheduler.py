"""The scheduler: a thread of `serve` that starts queued jobs as worker processes and watches them.

One GPU job per device at a time (training and swapping use a GPU when there is one; a training job
with `gpus` N takes N of them and trains data-parallel), CPU jobs up to
`cpu_jobs` at a time. A job waits until the jobs it names as inputs are done, and fails when one of
them failed. Cancel and pause are state changes made by the API; the scheduler sees a worker whose
job is no longer `running` and sends it SIGTERM (training saves its checkpoint first).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from dataclasses import dataclass

from swapface.cluster import cluster_gpus, connect, disconnect
from swapface.jobs.layout import DataDir
from swapface.jobs.ray_runner import RayJob
from swapface.jobs.store import Job, Store
from swapface.jobs.worker import run_job

GPU_KINDS = ("train", "swap")
RAY_GPU = "ray-gpu-"  # the scheduler's names for a Ray cluster's GPU slots
POLL_SECONDS = 0.25
KILL_AFTER_SECONDS = 120.0  # a worker that ignores SIGTERM this long (e.g. stuck in I/O) is killed


def input_job_ids(job: Job) -> list[str]:
    """The jobs this job reads the outputs of."""
    keys = {"train": ("a", "b"), "swap": ("model",), "eval": ("swap",)}.get(job.kind, ())
    return [job.inputs[key] for key in keys if isinstance(job.inputs.get(key), str)]


def finish_stopped_training(store: Store, data: DataDir, job: Job) -> None:
    """A training job stopped by request: done with the model as saved, or cancelled if none was saved."""
    from swapface.modeldir import WEIGHTS_FILE

    if (data.model(job.id) / WEIGHTS_FILE).is_file():
        store.update_job(job.id, only_if_state=(job.state,), state="done", progress=1.0, finished=time.time(),
                         outputs={"step": int(job.info.get("step", 0))})
    else:
        store.update_job(job.id, only_if_state=(job.state,), state="cancelled", finished=time.time())


@dataclass
class _Running:
    process: multiprocessing.Process | RayJob
    device: str
    signalled: float | None = None


def ranks_wanted(job: Job) -> int:
    """Data-parallel ranks a job runs as: a training job's `gpus` option (validated when it was queued)."""
    return int(job.options.get("gpus", 1)) if job.kind == "train" else 1


def gpu_devices() -> list[str]:
    import torch

    return [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


class Scheduler:
    def __init__(self, store: Store, data: DataDir, cpu_jobs: int = 1, gpus: list[str] | None = None,
                 threads_per_job: int | None = None, ray_address: str | None = None) -> None:
        self.store, self.data, self.cpu_jobs = store, data, max(1, cpu_jobs)
        self.ray = ray_address is not None
        self._ray_connection = False  # whether stop() ends the connection to the cluster
        if self.ray:  # GPU slots of the cluster; a job on one gets "cuda" (Ray picks the card)
            self._ray_connection = connect(ray_address)
            self.gpus = [f"{RAY_GPU}{i}" for i in range(cluster_gpus())]
        else:
            self.gpus = gpu_devices() if gpus is None else gpus
        self.threads = threads_per_job or max(1, (os.cpu_count() or 1) // self.cpu_jobs)
        self.running: dict[str, _Running] = {}
        self.context = multiprocessing.get_context("spawn")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.store.requeue_interrupted()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="scheduler")
        self._thread.start()

    def stop(self, wait: float = 60.0) -> None:
        """Server shutdown: ask every worker to stop (training saves); their jobs run again next start."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for entry in self.running.values():
            if entry.process.is_alive():
                entry.process.terminate()
        deadline = time.monotonic() + wait
        for entry in self.running.values():
            entry.process.join(max(0.0, deadline - time.monotonic()))
            if entry.process.is_alive():
                entry.process.kill()
        if self._ray_connection:
            disconnect()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # a database hiccup must not end scheduling; the next tick retries
                print(f"scheduler: {exc.__class__.__name__}: {exc}", flush=True)
            self._stop.wait(POLL_SECONDS)

    def tick(self) -> None:
        self._reap_and_signal()
        self._start_queued()

    def _reap_and_signal(self) -> None:
        for job_id, entry in list(self.running.items()):
            job = self.store.get_job(job_id)
            if not entry.process.is_alive():
                entry.process.join()
                del self.running[job_id]
                if job is not None and job.state == "running" and entry.signalled and job.control == "stop":
                    finish_stopped_training(self.store, self.data, job)  # stopped before training began
                elif job is not None and job.state == "running":  # died without a word: a crash, or OOM kill
                    self.store.update_job(job_id, only_if_state=("running",), state="failed",
                                          error=f"worker process ended unexpectedly (exit code "
                                                f"{entry.process.exitcode})", finished=time.time())
                continue
            wants_stop = job is None or job.state != "running" or job.control == "stop"
            if wants_stop and entry.signalled is None:
                entry.signalled = time.monotonic()
                entry.process.terminate()  # SIGTERM: training saves first
            elif entry.signalled is not None and time.monotonic() - entry.signalled > KILL_AFTER_SECONDS:
                entry.process.kill()

    def _free_devices(self, job: Job) -> list[str] | None:
        """The devices `job` runs on now (a training job's `gpus` of them), or None: wait for them."""
        busy = {device for entry in self.running.values() for device in entry.device.split(",")}
        if job.kind in GPU_KINDS and self.gpus:  # waits for GPUs rather than crawl on the CPU
            free = [gpu for gpu in self.gpus if gpu not in busy]
            wanted = ranks_wanted(job)
            return free[:wanted] if len(free) >= wanted else None
        cpu_busy = sum(entry.device == "cpu" for entry in self.running.values())
        return ["cpu"] if cpu_busy < self.cpu_jobs else None

    def _unrunnable(self, job: Job) -> str | None:
        """Why `job` can never run here (it asks for more GPUs than the server has), or None."""
        wanted = ranks_wanted(job)
        if job.kind in GPU_KINDS and self.gpus and wanted > len(self.gpus):
            where = "the cluster" if self.ray else "this server"
            return f"the job asks for {wanted} GPUs; {where} has {len(self.gpus)}"
        return None

    def _start_queued(self) -> None:
        for job in self.store.jobs(("queued",)):
            if job.id in self.running:  # a paused-then-resumed job whose worker is still saving
                continue
            inputs = {i: self.store.get_job(i) for i in input_job_ids(job)}
            unusable = [(i, j) for i, j in inputs.items() if j is None or j.state in ("failed", "cancelled")]
            if unusable:
                bad_id, bad = unusable[0]
                self.store.update_job(job.id, only_if_state=("queued",), state="failed", finished=time.time(),
                                      error=f"input job {bad_id} {'does not exist' if bad is None else bad.state}")
                continue
            problem = self._unrunnable(job)
            if problem is not None:
                self.store.update_job(job.id, only_if_state=("queued",), state="failed", finished=time.time(),
                                      error=problem)
                continue
            if any(j.state != "done" for j in inputs.values()):
                continue
            devices = self._free_devices(job)
            if devices is None:
                continue
            device = ",".join(devices)
            if not self.store.update_job(job.id, only_if_state=("queued",), state="running", device=device,
                                         started=job.started or time.time(), error=None):
                continue
            if self.ray:
                on_gpu = device.startswith(RAY_GPU)
                # one CPU slot and one thread each (a Ray worker cannot start the process pools that use more:
                # its children would re-import Ray's own main module); more nodes give more jobs at once. A
                # training job's ranks are plain child processes of the task, on its GPUs (or sharing its CPU)
                args = (str(self.data.root.resolve()), self.store.url, job.id, "cuda" if on_gpu else "cpu", None, 1)
                process = RayJob(args, gpus=len(devices) if on_gpu else 0, cpus=1)
            else:
                process = self.context.Process(
                    target=run_job, name=f"swapface-{job.kind}-{job.id[:8]}", daemon=False,
                    args=(str(self.data.root), self.store.url, job.id, device, os.getpid(), self.threads))
                process.start()
            self.running[job.id] = _Running(process, device)
