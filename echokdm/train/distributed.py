"""One process or many: set-up of torch.distributed from the torchrun environment (gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from echokdm.device import resolve_device


@dataclass
class DistContext:
    """Where this process stands in the run.

    Attributes:
        rank: global rank (0 for a lone process).
        world_size: number of processes.
        local_rank: rank on this node (picks the GPU).
        device: the device this process computes on.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum of ``values`` over all processes (float64 on this process's device)."""
        t = values.detach().to(self.device, torch.float64).clone()
        if self.distributed:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu()

    def all_ok(self, ok: bool) -> bool:
        """True when ``ok`` holds on every process (lets rank 0's errors stop all ranks cleanly)."""
        return bool(self.all_sum(torch.tensor([0.0 if ok else 1.0]))[0] == 0)

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` from every process, in rank order."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment, or run alone.

    Args:
        device: ``auto`` (this process's GPU if CUDA is available, else CPU), ``cpu``, ``cuda`` (GPU
            ``LOCAL_RANK``) or ``cuda:N`` (see :func:`echokdm.device.resolve_device`).

    Returns:
        The context; under torchrun the default process group is initialised (NCCL with GPUs, gloo on CPU).

    Raises:
        InputError: CUDA requested but not available, or no such GPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    use_cuda = dev.type == "cuda"
    if use_cuda:
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", device_id=dev if use_cuda else None)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The network inside a ``DistributedDataParallel`` wrapper (``model`` itself when it is not wrapped)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def shutdown_distributed() -> None:
    """Leave the process group (no-op for a lone process).

    Unreachable objects that still hold the group (a DDP reducer in a reference cycle) are freed first, while
    the group is alive; then all ranks meet at a barrier, so no rank tears down its connections while another
    is still using them. Otherwise gloo's threads can outlive the group and abort the process at exit
    ("terminate called without an active exception").
    """
    if dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
