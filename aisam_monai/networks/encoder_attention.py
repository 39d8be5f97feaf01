# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
The SAM image encoder's attention through ``scaled_dot_product_attention``, with the decomposed relative
position term as an additive mask, switched on per model instance (the ``segment-anything`` package is not
modified).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import Attention as SamEncoderAttention
from segment_anything.modeling.image_encoder import get_rel_pos
from torch import nn

__all__ = ["SDPAEncoderAttention", "use_sdpa_encoder_attention"]


class SDPAEncoderAttention(SamEncoderAttention):
    """
    SAM's encoder ``Attention`` (same parameters, same state dict) computed as
    ``scaled_dot_product_attention(q, k, v, attn_mask=R)`` where ``R[b, n, (i, j), (k, l)] = q_{ij} . Rh[i, k] +
    q_{ij} . Rw[j, l]`` is SAM's decomposed relative position term. Mathematically identical to the stock
    ``softmax(q k^T * scale + R) v``; on a GPU the fused kernel never materialises the softmax in float32.
    Instances are made by :func:`use_sdpa_encoder_attention`, not constructed directly.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, H, W, E)`` (a window or the whole grid) -> ``(B, H, W, E)``."""
        b, h, w, _ = x.shape
        heads = self.num_heads
        q, k, v = self.qkv(x).reshape(b, h * w, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)  # (B, n, hw, d)
        bias = None
        if self.use_rel_pos:
            rel_h = get_rel_pos(h, h, self.rel_pos_h).to(q.dtype)  # (h, h, d)
            rel_w = get_rel_pos(w, w, self.rel_pos_w).to(q.dtype)  # (w, w, d)
            grid_q = q.reshape(b, heads, h, w, -1)
            term_h = torch.einsum("bnhwc,hkc->bnhwk", grid_q, rel_h)
            term_w = torch.einsum("bnhwc,wkc->bnhwk", grid_q, rel_w)
            bias = (term_h.unsqueeze(-1) + term_w.unsqueeze(-2)).reshape(b, heads, h * w, h * w)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


def use_sdpa_encoder_attention(image_encoder: nn.Module, enable: bool = True) -> int:
    """
    Switch the attention of every block of a SAM ``ImageEncoderViT`` instance to :class:`SDPAEncoderAttention`
    (``enable=True``) or back to the stock class. Parameters, state dict keys and LoRA wrappers are unchanged.

    Returns:
        the number of blocks switched (0 for an encoder without SAM ViT blocks, such as LiteMedSAM's TinyViT).
    """
    target = SDPAEncoderAttention if enable else SamEncoderAttention
    switched = 0
    for block in getattr(image_encoder, "blocks", ()):
        if isinstance(block.attn, SamEncoderAttention) and type(block.attn) is not target:
            block.attn.__class__ = target
            switched += 1
    return switched
