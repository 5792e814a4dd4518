"""Multi-process training under `torchrun`: process-group setup from its environment variables.

`torchrun --nproc-per-node=N -m tetragen train ...` runs the same entry point in N processes; gloo on CPU, NCCL on
CUDA. Every process trains on its slice of the global batch; only rank 0 writes logs and checkpoints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


COLLECTIVE_TIMEOUT_S = float(os.environ.get("TETRAGEN_DIST_TIMEOUT_S", 1800))
EVAL_TIMEOUT_S = float(os.environ.get("TETRAGEN_EVAL_TIMEOUT_S", 7200))


_wait_group = None  # the process group of `wait_for_main`


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_type: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    global _wait_group
    _wait_group = dist.new_group(backend="gloo", timeout=timedelta(seconds=EVAL_TIMEOUT_S))
    if device_type == "cuda":
        torch.cuda.set_device(local)
    elif "OMP_NUM_THREADS" not in os.environ:
        # N processes on one CPU share its cores instead of each claiming all of them.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world))))
    return Dist(rank, world, local)


def average(value: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.enabled:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= d.world_size
    return value


def gather_bytes(data: bytes, d: Dist) -> list[bytes]:
    """Every process's `data`, in rank order (on every process); [data] without a process group."""
    if not d.enabled:
        return [data]
    mine = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    sizes = [torch.zeros(1, dtype=torch.long) for _ in range(d.world_size)]
    dist.all_gather(sizes, torch.tensor([len(mine)]))
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=torch.uint8)
    padded[:len(mine)] = mine
    out = [torch.zeros(longest, dtype=torch.uint8) for _ in range(d.world_size)]
    dist.all_gather(out, padded)
    return [bytes(t[:int(n.item())].numpy()) for t, n in zip(out, sizes)]


def wait_for_main(d: Dist) -> None:
    """The other processes wait here while rank 0 works alone (an evaluation, which may first train tetragen's image
    evaluator). The barrier runs in a gloo group of its own whose timeout is TETRAGEN_EVAL_TIMEOUT_S (default 2
    hours), so the training collectives keep their shorter one (TETRAGEN_DIST_TIMEOUT_S) and still fail fast when a
    process dies."""
    if d.enabled:
        dist.barrier(group=_wait_group)


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
