"""Keep this process's threads at the scheduling policy they had before an encoder opened.

SVT-AV1 (libsvtav1, the AV1 encoder inside PyAV's FFmpeg) makes the thread that opens it, and each of the
encoder threads it starts, real-time (SCHED_FIFO, priority 99) whenever it is allowed to: whenever the process
runs as root, as it does in most containers. A real-time thread that computes never yields to ordinary ones, so
on a small machine it starves every other process (a server's job workers, a browser), and every process
started afterwards from such a thread inherits the policy; the encoder's threads keep it after it closes. We
found no encoder option that turns this off, and neither PyAV nor the standard library offers a guard, so after
an encoder opens we put every thread of this process that it changed back to the caller's policy (Linux's
scheduler calls take a thread id where they take a process id).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_TASKS = "/proc/self/task"


def _threads() -> list[int]:
    """Ids of this process's threads ([] where there is no /proc or no scheduler call: not Linux)."""
    if not hasattr(os, "sched_setscheduler") or not os.path.isdir(_TASKS):
        return []
    return [int(name) for name in os.listdir(_TASKS)]


@contextlib.contextmanager
def keep_scheduling() -> Iterator[None]:
    """Run the body (an encoder's open), then give every thread the calling thread's policy from before."""
    if not _threads():
        yield  # not Linux: nothing here to guard
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        for tid in _threads():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                if os.sched_getscheduler(tid) != policy or os.sched_getparam(tid) != param:
                    os.sched_setscheduler(tid, policy, param)


def realtime_threads() -> list[int]:
    """Ids of this process's threads under a real-time policy (for tests and diagnostics)."""
    found = []
    for tid in _threads():
        with contextlib.suppress(OSError):
            if os.sched_getscheduler(tid) in (os.SCHED_FIFO, os.SCHED_RR):
                found.append(tid)
    return found
