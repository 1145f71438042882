"""Joining a Ray cluster (`pip install 'swapface[cluster]'`), for the chunked swap and the platform alike.

A connection this process made is ended when its work is done; one the caller made before is left as it
was. Ray kills a driver that is still connected when its cluster goes away, so nothing may stay connected
by accident.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType

from swapface.errors import SwapfaceError


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise SwapfaceError("--ray needs Ray: pip install 'swapface[cluster]'") from None
    return ray


def connect(address: str) -> bool:
    """Join the cluster at `address` ("auto" finds a local one); True when this call made the connection
    (and `disconnect` should end it)."""
    ray = import_ray()
    ours = not ray.is_initialized()
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    return ours


def disconnect() -> None:
    import_ray().shutdown()


def cluster_gpus() -> int:
    return int(import_ray().cluster_resources().get("GPU", 0))


@contextlib.contextmanager
def connection(address: str) -> Iterator[ModuleType]:
    """Ray, connected to the cluster for the block."""
    ours = connect(address)
    try:
        yield import_ray()
    finally:
        if ours:
            disconnect()
