"""torchrun integration: the same command runs single-process or DistributedDataParallel.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK (and the rendezvous variables, also across nodes);
GPUs use NCCL, CPUs gloo. Only rank 0 writes files.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from swapface.devices import resolve_device
from swapface.errors import SwapfaceError

JOIN_TIMEOUT = timedelta(minutes=30)  # torch's own default for a rank that never comes
ABORT_KEY = "swapface/abort"  # a launcher that saw a rank die sets this, with why, in the rendezvous store
_JOINED_KEY = "swapface/joined"


@dataclass(frozen=True)
class Distributed:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str | None) -> Distributed:
    """Join the process group when started by torchrun and pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = resolve_device(device)
    if chosen.type == "cuda" and chosen.index is None:
        chosen = torch.device("cuda", local_rank)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        if "TORCHELASTIC_RUN_ID" in os.environ:  # torchrun: its agent rendezvous and watches the ranks
            dist.init_process_group(backend)
        else:
            dist.init_process_group(backend, store=_join(rank, world_size), rank=rank, world_size=world_size)
    return Distributed(rank, world_size, local_rank, chosen)


def _join(rank: int, world_size: int) -> dist.TCPStore:
    """Meet the other ranks in a store on MASTER_ADDR:MASTER_PORT (rank 0 hosts it), checking for an
    abort between waits.

    Why not torch's own env:// rendezvous: it blocks inside C++ until every rank has come or its timeout
    has passed, so a rank that died on start (a bad device, a missing file) kept the others waiting
    for half an hour. Here a launcher that sees a rank die writes ABORT_KEY, and the others stop at once
    with its reason."""
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size,
                          is_master=rank == 0, timeout=JOIN_TIMEOUT, wait_for_workers=False)
    store.add(_JOINED_KEY, 1)
    deadline = time.monotonic() + JOIN_TIMEOUT.total_seconds()
    while (joined := store.add(_JOINED_KEY, 0)) < world_size:
        if store.check([ABORT_KEY]):
            raise SwapfaceError(store.get(ABORT_KEY).decode())
        if time.monotonic() > deadline:
            raise SwapfaceError(f"only {joined} of {world_size} training ranks joined in "
                                f"{JOIN_TIMEOUT.total_seconds() / 60:.0f} minutes")
        time.sleep(0.2)
    return store


def teardown(info: Distributed) -> None:
    global _vote_group
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
    _vote_group = None


def mean_across_ranks(values: torch.Tensor, info: Distributed) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values = values / info.world_size
    return values


def broadcast_from_main(module: torch.nn.Module, info: Distributed) -> None:
    """Give every rank rank 0's parameters (for modules not wrapped in DistributedDataParallel)."""
    if info.enabled:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def gather_objects(obj: object, info: Distributed) -> list:
    """Per-rank small objects (RNG states) to every rank, in rank order (in-memory, never from files)."""
    if not info.enabled:
        return [obj]
    out: list = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: Distributed) -> None:
    if info.enabled:
        dist.barrier()


_vote_group = None


def any_rank(flag: bool, info: Distributed) -> bool:
    """True on every rank when `flag` is true on any (a stop request seen by one rank stops all at the
    same step). Votes go over a CPU (gloo) group, so asking every step never waits on the GPU."""
    if not info.enabled:
        return flag
    global _vote_group
    if _vote_group is None:
        _vote_group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD
    vote = torch.tensor([float(flag)])
    dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=_vote_group)
    return bool(vote.item() > 0)
