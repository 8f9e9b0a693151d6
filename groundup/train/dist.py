"""The processes of a training run: one, or several under `torchrun`.

    d = setup_dist(device)     rank, world size, device; the process group when torchrun started us
    d.sum(t), d.barrier()      the two collectives the loop needs beyond DDP's gradient all-reduce
    d.say(msg)                 a line on stderr from rank 0 only
    teardown(d)                destroy the process group if we created it

Data parallel: under `torchrun` (RANK/WORLD_SIZE set) the loop wraps the model in
DistributedDataParallel -- NCCL on a GPU, gloo on a CPU (which is how the tests check that 2
processes compute the same losses as one). Only rank 0 writes files; the others wait at
barriers.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from groundup.errors import UserError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owned: bool = False             # we initialised the process group (so we tear it down)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            x = x.clone()
            dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    def say(self, msg: str, quiet: bool = False) -> None:
        """A line on stderr from rank 0 (`quiet` runs keep only warnings and resumes)."""
        if self.main and not quiet:
            print(msg, file=sys.stderr, flush=True)


def setup_dist(device: str = "auto") -> Dist:
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda but torch sees no CUDA GPU -- use --device cpu")
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return Dist(device=torch.device("cuda" if use_cuda else "cpu"))
    local = int(os.environ.get("LOCAL_RANK", 0))
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    owned = not dist.is_initialized()
    if use_cuda:
        torch.cuda.set_device(dev)
    if owned:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), dev, owned)


def teardown(d: Dist) -> None:
    if d.owned and dist.is_initialized():
        dist.destroy_process_group()
