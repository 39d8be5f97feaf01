# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Low-rank adaptation of the image encoder's attention (q and v of every block, SAMed style).

Works on SAM's ViT and on LiteMedSAM's TinyViT.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["LoRAQKV", "apply_lora"]


class LoRAQKV(nn.Module):
    """
    Wraps the fused ``qkv`` projection of an encoder attention layer and adds rank-``r`` updates to its query and
    value parts: ``q += B_q A_q x`` and ``v += B_v A_v x`` (no scaling); keys are untouched. ``A`` is
    Kaiming-uniform initialised and ``B`` zero, so the wrapped layer starts out equal to the original.

    SAM's ViT lays the output out as ``[q | k | v]`` (``Linear(E, 3E)``, the defaults); LiteMedSAM's TinyViT as
    ``heads`` groups of ``[q (key_dim) | k (key_dim) | v (value_dim)]``.

    Args:
        qkv: the original projection ``Linear(E, heads * (2 key_dim + value_dim))``; it stays frozen.
        rank: LoRA rank ``r``.
        heads: number of per-head groups in the output (1 for SAM's ViT).
        key_dim: query/key width per group (``E`` by default).
        value_dim: value width per group (``E`` by default).
    """

    def __init__(
        self, qkv: nn.Linear, rank: int = 4, heads: int = 1, key_dim: int | None = None, value_dim: int | None = None
    ) -> None:
        super().__init__()
        dim = qkv.in_features
        key_dim, value_dim = key_dim or dim, value_dim or dim
        if qkv.out_features != heads * (2 * key_dim + value_dim):
            raise ValueError(
                f"expected a fused qkv Linear({dim}, {heads * (2 * key_dim + value_dim)}) for {heads} head(s) of "
                f"q/k {key_dim} and v {value_dim}, got Linear({dim}, {qkv.out_features})."
            )
        self.qkv = qkv
        self.heads, self.key_dim, self.value_dim = heads, key_dim, value_dim
        self.a_q = nn.Linear(dim, rank, bias=False)
        self.b_q = nn.Linear(rank, heads * key_dim, bias=False)
        self.a_v = nn.Linear(dim, rank, bias=False)
        self.b_v = nn.Linear(rank, heads * value_dim, bias=False)
        for a, b in ((self.a_q, self.b_q), (self.a_v, self.b_v)):
            nn.init.kaiming_uniform_(a.weight, a=math.sqrt(5))
            nn.init.zeros_(b.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., E)`` -> ``(..., heads * (2 key_dim + value_dim))``."""
        groups = (self.heads, -1)
        q, k, v = self.qkv(x).unflatten(-1, groups).split([self.key_dim, self.key_dim, self.value_dim], dim=-1)
        q = q + self.b_q(self.a_q(x)).unflatten(-1, groups)
        v = v + self.b_v(self.a_v(x)).unflatten(-1, groups)
        return torch.cat([q, k, v], dim=-1).flatten(-2)


def _attention_layers(image_encoder: nn.Module) -> list[nn.Module]:
    """The attention modules of SAM's ViT (``blocks[i].attn``) or LiteMedSAM's TinyViT (its attention stages)."""
    if hasattr(image_encoder, "blocks"):
        return [blk.attn for blk in image_encoder.blocks]
    return [blk.attn for layer in image_encoder.layers for blk in getattr(layer, "blocks", []) if hasattr(blk, "attn")]


def _wrap(attn: nn.Module, rank: int) -> LoRAQKV:
    if hasattr(attn, "key_dim"):  # TinyViT: per-head [q | k | v] groups
        return LoRAQKV(attn.qkv, rank, attn.num_heads, attn.key_dim, attn.d)
    return LoRAQKV(attn.qkv, rank)


def apply_lora(image_encoder: nn.Module, rank: int = 4, blocks: Sequence[int] | None = None) -> list[LoRAQKV]:
    """
    Replace the ``qkv`` projection of the given attention blocks of the encoder (all by default; SAM's ViT blocks
    or LiteMedSAM's TinyViT attention blocks, in order) by :class:`LoRAQKV` on this instance (the packages
    themselves are not modified).

    Returns:
        the inserted LoRA modules.
    """
    layers = _attention_layers(image_encoder)
    indices = range(len(layers)) if blocks is None else blocks
    inserted = []
    for i in indices:
        attn = layers[i]
        if isinstance(attn.qkv, LoRAQKV):
            raise ValueError(f"encoder block {i} already has LoRA.")
        attn.qkv = _wrap(attn, rank)
        inserted.append(attn.qkv)
    return inserted
