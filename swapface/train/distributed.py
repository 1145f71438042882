"""torchrun integration: the same command runs single-process or DistributedDataParallel.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK (and the rendezvous variables, also across nodes);
GPUs use NCCL, CPUs gloo. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from swapface.devices import resolve_device


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
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return Distributed(rank, world_size, local_rank, chosen)


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
