"""Jobs as Ray tasks: `swapface serve --ray ADDRESS` runs its workers on a Ray cluster instead of as
local processes. Each job is one task (training and swapping ask for a GPU when the cluster has any)
behind the small process interface the scheduler uses, so states, progress (in the job store) and
restarts work as they do locally. The data folder must be on a path every node sees and the job
database reachable from every node (PostgreSQL by URL; SQLite only on one machine)."""

from __future__ import annotations

from swapface.jobs.worker import run_job


class RayJob:
    """One job's Ray task, with the parts of multiprocessing.Process the scheduler calls."""

    def __init__(self, args: tuple, gpus: int, cpus: int) -> None:
        import ray

        self._ray = ray
        task = ray.remote(num_gpus=gpus, num_cpus=cpus, max_retries=0)(run_job)
        self._ref = task.remote(*args)
        self.exitcode: int | None = None

    def is_alive(self) -> bool:
        ready, _ = self._ray.wait([self._ref], timeout=0)
        if ready and self.exitcode is None:
            try:
                self._ray.get(ready[0])
                self.exitcode = 0
            except Exception:  # the task's own failures are in the job store; this is a lost worker
                self.exitcode = 1
        return not ready

    def join(self, timeout: float | None = None) -> None:
        self._ray.wait([self._ref], timeout=timeout)

    def terminate(self) -> None:
        """Ask the task to stop (it also sees the stop request in the job store and saves first)."""
        self._ray.cancel(self._ref, force=False)

    def kill(self) -> None:
        self._ray.cancel(self._ref, force=True)
