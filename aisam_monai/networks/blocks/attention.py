# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""SAM-style multi-head attention computed with ``scaled_dot_product_attention``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Attention", "multihead_attention", "sam_attention"]


def multihead_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int, key_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """
    ``softmax(q k^T / sqrt(d)) v`` per head on already projected inputs, through
    ``torch.nn.functional.scaled_dot_product_attention``.

    Args:
        q: projected queries ``(B, Nq, E)``.
        k: projected keys ``(B, Nk, E)``.
        v: projected values ``(B, Nk, E)``.
        num_heads: number of heads (must divide ``E``).
        key_mask: optional boolean ``(B, Nk)``; ``False`` marks keys that must be ignored (padding).
            Every query must keep at least one valid key.

    Returns:
        ``(B, Nq, E)`` (heads merged, before the output projection).
    """
    b, nq, c = q.shape
    q = q.reshape(b, nq, num_heads, c // num_heads).transpose(1, 2)
    k = k.reshape(b, k.shape[1], num_heads, c // num_heads).transpose(1, 2)
    v = v.reshape(b, v.shape[1], num_heads, c // num_heads).transpose(1, 2)
    mask = None if key_mask is None else key_mask[:, None, None, :]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2).reshape(b, nq, c)


def sam_attention(
    module: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """
    Run a SAM-style attention module (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` and ``num_heads``
    attributes, as in ``segment_anything.modeling.transformer.Attention`` and :class:`Attention`) with
    :func:`multihead_attention`. Mathematically identical to SAM's explicit ``softmax(q k^T / sqrt(d)) v``,
    and it accepts a key mask.

    Args:
        module: the attention module whose projections are used.
        q: queries ``(B, Nq, E)``.
        k: keys ``(B, Nk, E)``.
        v: values ``(B, Nk, E)``.
        key_mask: optional boolean ``(B, Nk)``; ``False`` marks keys that must be ignored (padding).

    Returns:
        ``(B, Nq, E)``.
    """
    out = multihead_attention(module.q_proj(q), module.k_proj(k), module.v_proj(v), module.num_heads, key_mask)
    return module.out_proj(out)


class Attention(nn.Module):
    """
    Multi-head attention with an optional down-projection of the internal width (SAM's
    ``downsample_rate``), separate q/k/v/out linear layers, scaled dot product and softmax.

    Args:
        embedding_dim: width ``E`` of the inputs and output.
        num_heads: number of heads; must divide ``embedding_dim // downsample_rate``.
        downsample_rate: the internal width is ``embedding_dim // downsample_rate``.
    """

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads != 0:
            raise ValueError(f"num_heads={num_heads} must divide the internal width {self.internal_dim}.")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``q (B, Nq, E)``, ``k, v (B, Nk, E)`` -> ``(B, Nq, E)``."""
        return sam_attention(self, q, k, v)
