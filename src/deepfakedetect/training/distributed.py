"""Distributed training under torchrun: process group set-up, sharded sampling, gathering rows."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Sampler

from deepfakedetect._errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ['Dist', 'ShardSampler', 'epoch_seed', 'gather_rows', 'setup_distributed']


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    backend: str | None = None
    created: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.created and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self.created = False


def setup_distributed(device: str | torch.device | None) -> tuple[Dist, torch.device]:
    dist = torch.distributed
    world_env = int(os.environ.get("WORLD_SIZE", "1") or 1)
    state = Dist()
    if dist.is_available() and dist.is_initialized():
        state = Dist(dist.get_rank(), dist.get_world_size(), str(dist.get_backend()), False)
    elif world_env > 1:
        if not dist.is_available():
            raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
        wants_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
        backend = "nccl" if wants_cuda else "gloo"
        dist.init_process_group(backend=backend)
        state = Dist(dist.get_rank(), dist.get_world_size(), backend, True)
        logger.info("joined process group: rank %d of %d (%s)", state.rank, state.world, backend)
    local_rank = int(os.environ.get("LOCAL_RANK", state.rank if state.active else 0))
    if device is not None:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None and state.active:
            dev = torch.device("cuda", local_rank)
    elif torch.cuda.is_available() and state.backend in (None, "nccl"):
        dev = torch.device("cuda", local_rank if state.active else torch.cuda.current_device())
    else:
        dev = torch.device("cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return state, dev


class ShardSampler(Sampler[int]):
    """Each process's share of an epoch, like ``DistributedSampler``.

    Training (``shuffle=True``): a permutation seeded by ``(seed, epoch)``, padded by
    repeating its start to a multiple of the world size, dealt round-robin. With
    ``weights`` (one per item, any positive scale), the epoch is instead ``n`` draws with
    replacement in proportion to them, the same in every process, dealt the same way.
    Evaluation: ``range(rank, n, world)``, no padding.
    """

    def __init__(
        self, n: int, *, rank: int, world: int, shuffle: bool, seed: int, weights: np.ndarray | None = None
    ) -> None:
        self.n, self.rank, self.world, self.shuffle, self.seed = n, rank, world, shuffle, seed
        self.weights = None if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float64))
        if self.weights is not None and (self.weights.shape != (n,) or not bool((self.weights >= 0).all())):
            raise ValueError(f"weights must be {n} non-negative numbers, got shape {tuple(self.weights.shape)}")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.rank, self.n, self.world))
        g = torch.Generator()
        g.manual_seed(epoch_seed(self.seed, self.epoch))
        if self.weights is not None:
            order = torch.multinomial(self.weights, self.n, replacement=True, generator=g).tolist()
        else:
            order = torch.randperm(self.n, generator=g).tolist()
        total = math.ceil(self.n / self.world) * self.world
        order += order[: total - self.n]
        return order[self.rank : total : self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        if not self.shuffle:
            return len(range(self.rank, self.n, self.world))
        return math.ceil(self.n / self.world)


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, 1 << 31]).generate_state(1, np.uint64)[0] >> 1)


def gather_rows(rows: torch.Tensor, dist: Dist, device: torch.device) -> torch.Tensor:
    """All processes' ``(n_i, k)`` float64 rows, concatenated in rank order."""
    if not dist.active:
        return rows
    comm = device if dist.backend == "nccl" else torch.device("cpu")
    local = rows.to(comm)
    n = torch.tensor([local.shape[0]], device=comm, dtype=torch.int64)
    sizes = [torch.zeros_like(n) for _ in range(dist.world)]
    torch.distributed.all_gather(sizes, n)
    most = int(max(s.item() for s in sizes))
    padded = torch.zeros((most, local.shape[1]), dtype=local.dtype, device=comm)
    padded[: local.shape[0]] = local
    parts = [torch.zeros_like(padded) for _ in range(dist.world)]
    torch.distributed.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)]).cpu()
