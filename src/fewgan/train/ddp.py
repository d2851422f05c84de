"""Multi-process (torch DDP) helpers. Launch with `torchrun --nproc_per_node N -m fewgan.cli train ...`.

A process is part of a group when WORLD_SIZE > 1 in its environment (torchrun sets WORLD_SIZE, RANK,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Backend: nccl for CUDA, gloo for CPU. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False  # we called init_process_group, so we destroy it

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(use_cuda: bool) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    for key in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if key not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={world} but {key} is not set: launch multi-process training "
                               "with `torchrun --nproc_per_node N ...`")
    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    backend = "nccl" if use_cuda else "gloo"
    owns = False
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
        owns = True
    return Dist(rank=rank, world_size=world, local_rank=local, backend=dist.get_backend(), owns_group=owns)


def cleanup(d: Dist) -> None:
    if d.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def all_gather_object(d: Dist, obj):
    if not d.enabled:
        return [obj]
    out = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


def any_over_ranks(d: Dist, flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any rank (keeps ranks in step when one must stop)."""
    if not d.enabled:
        return bool(flag)
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


@torch.no_grad()
def broadcast_buffers(d: Dist, *modules: nn.Module) -> None:
    """Make every rank hold rank 0's buffers (BatchNorm statistics drift apart per rank)."""
    if not d.enabled:
        return
    for m in modules:
        for b in m.buffers():
            dist.broadcast(b, src=0)


def wrapper(d: Dist, device: torch.device):
    """The trainer's `wrap` for this process group: DDP on multi-process runs, None (no wrapping) otherwise."""
    if not d.enabled:
        return None
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return lambda module: DDP(module, device_ids=ids)
