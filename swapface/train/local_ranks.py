"""Data-parallel training on one machine without a torchrun launcher around it.

The platform's training job runs inside a worker that reports progress and hears pause and stop; with
N devices that worker becomes rank 0 and starts ranks 1..N-1 as child processes with the environment
torchrun gives its ranks (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). The training loop is
the one `torchrun swapface train` runs: a stop signal to rank 0 is voted to every rank at the next step,
and only rank 0 writes. The children die with rank 0 (a killed worker leaves no rank behind).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist

from swapface.errors import SwapfaceError
from swapface.train import distributed
from swapface.train.loop import Progress, TrainResult, train
from swapface.train.options import AugmentOptions, TrainOptions
from swapface.workers import die_with

CHILD_EXIT_SECONDS = 120.0  # how long the other ranks may take to finish after rank 0 returns
WATCH_SECONDS = 0.5  # how often the launcher looks for a rank that died
STORE_CONNECT_TIMEOUT = timedelta(seconds=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _options_json(options: TrainOptions) -> str:
    return json.dumps(dataclasses.asdict(options), default=str)


def _options_from_json(text: str) -> TrainOptions:
    data = json.loads(text)
    data["augment"] = AugmentOptions(**data["augment"])
    data["freeze"] = tuple(data["freeze"])
    data["init_from"] = None if data["init_from"] is None else Path(data["init_from"])
    return TrainOptions(**data)


@contextlib.contextmanager
def _rank_environment(values: dict[str, str]) -> Iterator[None]:
    """Set torchrun's variables for this process's training only (a reused worker must not keep them)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def train_on_devices(faceset_a: Path, faceset_b: Path, model_dir: Path, options: TrainOptions, devices: list[str],
                     threads: int = 1, progress: Callable[[Progress], None] | None = None,
                     message: Callable[[str], None] = print) -> TrainResult:
    """Train on each of `devices` as one data-parallel rank (this process is rank 0); one device: plain."""
    if len(devices) == 1:
        return train(faceset_a, faceset_b, model_dir, dataclasses.replace(options, device=devices[0]),
                     progress=progress, message=message)
    world = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": str(len(devices))}
    children = []
    parent = os.getpid()
    try:
        for rank in range(1, len(devices)):
            spec = {"a": str(faceset_a), "b": str(faceset_b), "model": str(model_dir), "threads": threads,
                    "options": _options_json(dataclasses.replace(options, device=devices[rank]))}
            env = {**os.environ, **world, "RANK": str(rank), "LOCAL_RANK": str(rank), "OMP_NUM_THREADS": str(threads)}
            children.append(subprocess.Popen([sys.executable, "-m", "swapface.train.local_ranks", json.dumps(spec)],
                                             env=env, preexec_fn=lambda: die_with(parent)))
        done = threading.Event()
        watcher = threading.Thread(target=_watch, args=(children, len(devices), world, done), daemon=True)
        watcher.start()
        try:
            with _rank_environment({**world, "RANK": "0", "LOCAL_RANK": "0"}):
                result = train(faceset_a, faceset_b, model_dir, dataclasses.replace(options, device=devices[0]),
                               progress=progress, message=message)
        finally:
            done.set()  # the watcher ends within STORE_CONNECT_TIMEOUT; not joined, so no failure waits on it
        for rank, child in enumerate(children, 1):
            code = child.wait(CHILD_EXIT_SECONDS)
            if code != 0:
                raise SwapfaceError(_rank_failed(rank, len(devices), code))
        return result
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def _rank_failed(rank: int, world_size: int, code: int) -> str:
    return f"training rank {rank} of {world_size} ended with exit code {code}"


def _watch(children: list[subprocess.Popen], world_size: int, world: dict[str, str], done: threading.Event) -> None:
    """Until rank 0's training returns: if a rank dies with an error, tell the rendezvous, so ranks still
    waiting there stop with the reason instead of waiting for the ones that will never come."""
    while not done.wait(WATCH_SECONDS):
        for rank, child in enumerate(children, 1):
            code = child.poll()
            if code not in (None, 0):
                try:  # rank 0 hosts the store; if it is gone already, nobody is left waiting
                    store = dist.TCPStore(world["MASTER_ADDR"], int(world["MASTER_PORT"]), world_size,
                                          is_master=False, timeout=STORE_CONNECT_TIMEOUT)
                    store.set(distributed.ABORT_KEY, _rank_failed(rank, world_size, code))
                except (RuntimeError, dist.DistError):
                    pass
                return


def _main() -> None:
    """A rank started by train_on_devices: train with the spec in argv[1], as rank $RANK."""
    import torch

    spec = json.loads(sys.argv[1])
    torch.set_num_threads(spec["threads"])
    try:
        train(spec["a"], spec["b"], spec["model"], _options_from_json(spec["options"]), message=lambda _: None)
    except SwapfaceError as error:  # one line in the worker's log; rank 0 reports the failure to the user
        sys.exit(f"training rank {os.environ['RANK']}: {error}")


if __name__ == "__main__":
    _main()
