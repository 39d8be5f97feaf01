# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Helpers of the multi-GPU (DDP) bundle overlays."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from ignite.handlers import ProgressBar
from monai.handlers import StatsHandler, TensorBoardStatsHandler

__all__ = ["LOGGING_HANDLERS", "handlers_for_rank", "ddp_backend", "ddp_device"]

LOGGING_HANDLERS = (StatsHandler, TensorBoardStatsHandler, ProgressBar)
"""Handlers that only write logs; every other handler takes part in collectives or keeps state on every rank."""


def handlers_for_rank(handlers: Sequence | None) -> list:
    """``handlers`` on rank 0; without the :data:`LOGGING_HANDLERS` on the other ranks of a process group."""
    handlers = [h for h in (handlers or []) if h is not None]
    if dist.is_available() and dist.is_initialized() and dist.get_rank() > 0:
        return [h for h in handlers if not isinstance(h, LOGGING_HANDLERS)]
    return handlers


def ddp_backend() -> str:
    """``"nccl"`` with CUDA, ``"gloo"`` on the CPU."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def ddp_device(local_rank: int | str) -> torch.device:
    """``cuda:<local_rank>`` with CUDA (and make it current), the CPU otherwise."""
    if torch.cuda.is_available():
        torch.cuda.set_device(int(local_rank))
        return torch.device(f"cuda:{int(local_rank)}")
    return torch.device("cpu")
