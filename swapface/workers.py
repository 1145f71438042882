"""Worker-process pools that never outlive the process that started them.

Extraction and evaluation analyse frames in worker processes (several hundred MB each, holding dlib's
models). If the main process is killed with SIGKILL it cannot stop them, and a plain
ProcessPoolExecutor's workers keep working through their queue for minutes. Here the workers are the
main process's own children (spawned: no inherited threads or locks), and each asks the kernel to
kill it when its parent dies (Linux's PR_SET_PDEATHSIG; elsewhere a thread polls the parent, which
only reacts between the GIL-holding calls of the work). A pool left by an exception cancels its queued
work instead of finishing it.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

PR_SET_PDEATHSIG = 1
PARENT_POLL_SECONDS = 0.5


def die_with(parent: int) -> None:
    """Make this process (a child of `parent`) end when its parent does."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request was made
            os._exit(1)
        return
    on_parent_exit(parent, lambda: os._exit(1))  # no cleanup to do: a worker holds only read-only models and frames


def on_parent_exit(parent: int, action: Callable[[], None]) -> None:
    """Run `action` (in a thread of this process) once its parent `parent` is gone."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        action()

    threading.Thread(target=watch, name="swapface-parent-watch", daemon=True).start()


def _start_worker(parent: int, initializer: Callable[..., None], initargs: tuple) -> None:
    die_with(parent)
    initializer(*initargs)


@contextlib.contextmanager
def process_pool(workers: int, initializer: Callable[..., None], initargs: tuple = ()) -> Iterator[cf.Executor]:
    """A pool of spawned worker processes that die with this process."""
    pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_start_worker, initargs=(os.getpid(), initializer, initargs))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
