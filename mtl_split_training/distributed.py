"""Data-parallel training across processes started by torchrun (gloo on CPU, nccl on GPU).

Gradients are averaged with one all-reduce after each backward instead of wrapping the model
in DistributedDataParallel: DDP's reducer hooks only see `loss.backward()`, while torchjd
fills `.grad` through its own autograd calls. Averaging after the fact works for every
weighting, and is what DDP computes. Each rank aggregates its own Jacobian before averaging.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def init_distributed() -> DistContext:
    """A process group when launched by torchrun with more than one process, else single-process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def shutdown_distributed(ctx: DistContext) -> None:
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()


def pick_device(requested: str, ctx: DistContext) -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda", ctx.local_rank if ctx.active else 0)
    return torch.device("cpu")


def broadcast_module(module: nn.Module, ctx: DistContext) -> None:
    """Every rank starts from rank 0's weights and buffers."""
    if ctx.active:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def average_gradients(parameters: list[nn.Parameter], ctx: DistContext) -> None:
    if not ctx.active:
        return
    params = [p for p in parameters if p.grad is not None]
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= ctx.world_size
    offset = 0
    for p in params:
        n = p.grad.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


def average_floats(values: dict[str, float], ctx: DistContext) -> dict[str, float]:
    """Mean of per-rank numbers (epoch losses), so adaptive weightings agree across ranks."""
    if not ctx.active:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, t.tolist())}


def check_in_sync(module: nn.Module, ctx: DistContext) -> None:
    """Fail loudly if ranks ended with different weights (gradients were not averaged)."""
    if not ctx.active:
        return
    from .errors import TrainingError

    checksum = torch.stack([p.detach().double().sum() for p in module.parameters()]).cpu()
    low, high = checksum.clone(), checksum.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.allclose(low, high, rtol=1e-6, atol=1e-9):
        raise TrainingError("data-parallel ranks ended with different weights; report this as a bug")
