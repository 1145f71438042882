"""Worker-process pools that never outlive the process that started them.

Extraction and evaluation analyse frames in worker processes (several hundred MB each, holding dlib's
models). If the main process is killed with SIGKILL it cannot stop them, and a plain
ProcessPoolExecutor's workers keep working through their queue for minutes. Here every worker watches
the main process and exits as soon as it is gone; a pool left by an exception cancels its queued work
instead of finishing it.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator

PARENT_POLL_SECONDS = 0.5


def _exit_when_gone(parent: int) -> None:
    while True:
        time.sleep(PARENT_POLL_SECONDS)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(1)  # no cleanup to do: the worker holds only read-only models and in-flight frames
        except PermissionError:  # alive (another user's process would say so too)
            pass


def _start_worker(parent: int, initializer: Callable[..., None], initargs: tuple) -> None:
    threading.Thread(target=_exit_when_gone, args=(parent,), name="swapface-parent-watch", daemon=True).start()
    initializer(*initargs)


@contextlib.contextmanager
def process_pool(workers: int, initializer: Callable[..., None], initargs: tuple = ()) -> Iterator[cf.Executor]:
    """A forkserver process pool (no inherited threads or locks) whose workers die with this process."""
    context = multiprocessing.get_context("forkserver")
    pool = cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                  initargs=(os.getpid(), initializer, initargs))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
