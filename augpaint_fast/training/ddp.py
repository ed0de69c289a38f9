"""Data-parallel training across processes, one per GPU (NCCL) or several on a CPU (gloo).

A trainer written with these helpers runs unchanged as one plain process or under ``torchrun``::

    torchrun --nproc_per_node=2 -m augpaint_fast train-seg ...      # CPU: gloo; GPUs: NCCL, one per process

``torchrun`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed` reads them (``torch.distributed.init_process_group(init_method="env://")``) and
returns a :class:`DistContext`. Without them (or with ``WORLD_SIZE=1``) it returns a one-process context and
every helper below is a no-op, so the same code path serves both.

How a trainer uses them (PyTorch's DistributedDataParallel recipe):
- wrap the model in :func:`wrap_ddp` (gradients are averaged over the processes in ``backward``);
- shard each global batch with ``torch.utils.data.DistributedSampler`` (rank ``r`` of ``W`` takes positions
  ``r, r + W, r + 2W, ...`` of the epoch's permutation, so the union of the ranks' local batches of size
  ``B / W`` is the single-process batch of size ``B``);
- write checkpoints and outputs on rank 0 only (:meth:`DistContext.is_rank0`), then :func:`barrier` so no rank
  reads a half-written file; every rank reads the same checkpoint to resume;
- report metrics with :func:`all_reduce_mean` (the mean over processes).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import AugPaintError
from ..host import resolve_device


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: rank, local rank (GPU index on its node), world size, device."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None: a single process, torch.distributed not initialised

    @property
    def is_rank0(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise AugPaintError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def init_distributed(device: str | None = None) -> DistContext:
    """Join the process group torchrun describes in the environment, or return a one-process context.

    ``device``: ``"cpu"``, ``"cuda"`` or None (CUDA when available). Under torchrun with CUDA each process
    takes GPU ``LOCAL_RANK`` and the NCCL backend; on the CPU the backend is gloo. Idempotent: a second call
    returns the context of the group already joined.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    want = resolve_device(device)
    if want.type not in ("cpu", "cuda"):
        raise AugPaintError(f"--device must be cpu or cuda, got {device!r}")
    if world <= 1:
        return DistContext(device=want)
    dev = torch.device(f"cuda:{local_rank}") if want.type == "cuda" else torch.device("cpu")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise AugPaintError(f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA device(s) "
                                f"are visible; use --nproc_per_node <= the number of GPUs")
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
    return DistContext(rank=rank, local_rank=local_rank, world_size=world, device=dev, backend=backend)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (no-op for a single process)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait until every process gets here (no-op for a single process)."""
    if ctx.distributed:
        dist.barrier()


def all_reduce_mean(value: float | torch.Tensor, ctx: DistContext) -> float:
    """The mean of a scalar over all processes (the value itself for a single process)."""
    t = torch.as_tensor(value, dtype=torch.float64).detach().reshape(())
    if not ctx.distributed:
        return float(t)
    # NCCL reduces CUDA tensors only; gloo takes CPU tensors
    t = t.to(ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t) / ctx.world_size


def wrap_ddp(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` when distributed (it broadcasts rank 0's weights), else ``model``."""
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    return getattr(model, "module", model)


def split_batch(batch_size: int, ctx: DistContext) -> int:
    """The per-process share of a global batch; refuses a batch the processes cannot split evenly.

    Equal shares keep the DDP gradient (the mean of the processes' mean gradients) equal to the gradient of
    the mean loss over the whole global batch.
    """
    if batch_size % ctx.world_size:
        raise AugPaintError(f"--batch-size {batch_size} is the global batch and must be divisible by the "
                            f"{ctx.world_size} processes")
    return batch_size // ctx.world_size


__all__ = ["DistContext", "init_distributed", "shutdown", "barrier", "all_reduce_mean", "wrap_ddp", "unwrap",
           "split_batch"]
