# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Low-rank adaptation of the SAM image encoder's attention (q and v of every block, SAMed style)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["LoRAQKV", "apply_lora"]


class LoRAQKV(nn.Module):
    """
    Wraps the fused ``qkv`` projection ``Linear(E, 3E)`` of a SAM encoder block and adds rank-``r``
    updates to its query and value slices: ``q += B_q A_q x`` and ``v += B_v A_v x`` (no scaling);
    keys are untouched. ``A`` is Kaiming-uniform initialised and ``B`` zero, so the wrapped layer starts
    out equal to the original.

    Args:
        qkv: the original ``Linear(E, 3E)``; it stays frozen.
        rank: LoRA rank ``r``.
    """

    def __init__(self, qkv: nn.Linear, rank: int = 4) -> None:
        super().__init__()
        if qkv.out_features != 3 * qkv.in_features:
            raise ValueError(f"expected a fused qkv Linear(E, 3E), got Linear({qkv.in_features}, {qkv.out_features}).")
        dim = qkv.in_features
        self.qkv = qkv
        self.dim = dim
        self.a_q = nn.Linear(dim, rank, bias=False)
        self.b_q = nn.Linear(rank, dim, bias=False)
        self.a_v = nn.Linear(dim, rank, bias=False)
        self.b_v = nn.Linear(rank, dim, bias=False)
        for a, b in ((self.a_q, self.b_q), (self.a_v, self.b_v)):
            nn.init.kaiming_uniform_(a.weight, a=math.sqrt(5))
            nn.init.zeros_(b.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, H, W, E)`` -> ``(B, H, W, 3E)``."""
        q, k, v = self.qkv(x).split(self.dim, dim=-1)
        return torch.cat([q + self.b_q(self.a_q(x)), k, v + self.b_v(self.a_v(x))], dim=-1)


def apply_lora(image_encoder: nn.Module, rank: int = 4, blocks: Sequence[int] | None = None) -> list[LoRAQKV]:
    """
    Replace ``blk.attn.qkv`` of the given encoder blocks (all by default) by :class:`LoRAQKV` on this
    instance (the ``segment-anything`` package itself is not modified).

    Returns:
        the inserted LoRA modules.
    """
    indices = range(len(image_encoder.blocks)) if blocks is None else blocks
    inserted = []
    for i in indices:
        attn = image_encoder.blocks[i].attn
        if isinstance(attn.qkv, LoRAQKV):
            raise ValueError(f"encoder block {i} already has LoRA.")
        attn.qkv = LoRAQKV(attn.qkv, rank)
        inserted.append(attn.qkv)
    return inserted
