# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""The modified two-way transformer of the AI-Prompter (arXiv 2312.03119, the AI-Prompter)."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Attention, ConvMLP, MLPBlock, multihead_attention

__all__ = ["PrompterTransformer", "PrompterBlock"]


class PrompterBlock(nn.Module):
    """
    One layer of the prompter transformer: token self-attention, token-to-image attention, token MLP,
    image conv-MLP and image-to-token attention, each followed by a LayerNorm. The query positional
    term is the initial tokens ``T0``; the key positional term is the input image embedding ``K0``.

    Args:
        dim: token and image width ``D``.
        num_heads: attention heads.
        mlp_dim: hidden width of the token MLP.
        cross_downsample: internal width divisor of the two cross-attentions.
        first: the first layer's self-attention has no residual and no positional term.
    """

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, cross_downsample: int = 2, first: bool = False):
        super().__init__()
        self.first = first
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.token_to_image = Attention(dim, num_heads, cross_downsample)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.image_mlp = ConvMLP(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.image_to_token = Attention(dim, num_heads, cross_downsample)
        self.norm5 = nn.LayerNorm(dim)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, q_pe: torch.Tensor, k_pe: torch.Tensor, grid: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        ``G`` token sets per image (``G`` classes) share the image: a layer whose image input is still the same for
        all sets (the first) computes every image-side term once per image.

        Args:
            q: tokens ``(B*G, N, D)``, the ``G`` sets of an image consecutive; ``q_pe`` their positional term.
            k: image tokens ``(B, h*w, D)`` shared by the ``G`` sets, or ``(B*G, h*w, D)`` one per set.
            k_pe: positional term of the image tokens ``(B, h*w, D)``.
            grid: ``(h, w)`` of the image tokens.

        Returns:
            tokens ``(B*G, N, D)`` and image tokens ``(B*G, h*w, D)``.
        """
        b, hw, d = k_pe.shape
        g = q.shape[0] // b
        shared = k.shape[0] == b and g > 1
        if self.first:
            q = self.self_attn(q, q, q)
        else:
            qp = q + q_pe
            q = q + self.self_attn(qp, qp, q)
        q = self.norm1(q)
        if shared:  # attention per query: the G sets of an image are one query set over the same keys
            attn = self.token_to_image((q + q_pe).reshape(b, -1, d), k + k_pe, k).reshape(q.shape)
        else:
            attn = self.token_to_image(q + q_pe, _per_set(k, k_pe, g), k)
        q = self.norm2(q + attn)
        q = self.norm3(q + self.mlp(q))
        k_map = k.transpose(1, 2).reshape(k.shape[0], d, grid[0], grid[1])
        k = self.norm4(self.image_mlp(k_map).flatten(2).transpose(1, 2))
        m = self.image_to_token
        queries = m.q_proj(_per_set(k, k_pe, 1 if shared else g))  # (B or B*G, hw, Di)
        if shared:
            queries = queries.unsqueeze(1).expand(-1, g, -1, -1).reshape(b * g, hw, -1)
        attn = m.out_proj(multihead_attention(queries, m.k_proj(q + q_pe), m.v_proj(q), m.num_heads))
        if shared:
            k = (k.unsqueeze(1) + attn.view(b, g, hw, d)).reshape(b * g, hw, d)
        else:
            k = k + attn
        return q, self.norm5(k)


def _per_set(k: torch.Tensor, k_pe: torch.Tensor, g: int) -> torch.Tensor:
    """``k (B*g, hw, D) + k_pe (B, hw, D)`` broadcast over the ``g`` sets of each image."""
    b = k_pe.shape[0]
    return (k.view(b, g, *k.shape[1:]) + k_pe.unsqueeze(1)).view(k.shape)


class PrompterTransformer(nn.Module):
    """
    Stack of :class:`PrompterBlock` plus a final token-to-image attention.

    Args:
        depth: number of blocks (4 in the reference).
        dim: width ``D`` (256 for SAM).
        num_heads: attention heads (8).
        mlp_dim: token MLP hidden width (512).
        cross_downsample: internal width divisor of the cross-attentions (2).
    """

    def __init__(
        self, depth: int = 4, dim: int = 256, num_heads: int = 8, mlp_dim: int = 512, cross_downsample: int = 2
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            [PrompterBlock(dim, num_heads, mlp_dim, cross_downsample, first=(i == 0)) for i in range(depth)]
        )
        self.final_attn = Attention(dim, num_heads, cross_downsample)
        self.norm_final = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            tokens: initial tokens ``T0`` ``(B*G, N, D)`` (point tokens then class tokens): ``G`` token sets per
                image (one per class), the sets of an image consecutive.
            image: image embedding ``(B, D, h, w)``, shared by the ``G`` sets of each image.

        Returns:
            refined tokens ``(B*G, N, D)`` and refined image tokens ``F`` ``(B*G, h*w, D)``.
        """
        b = image.shape[0]
        if tokens.shape[0] % b:
            raise ValueError(f"{tokens.shape[0]} token sets for {b} images: expected a multiple.")
        g = tokens.shape[0] // b
        grid = (image.shape[-2], image.shape[-1])
        k0 = image.flatten(2).transpose(1, 2)
        q, k = tokens, k0
        for layer in self.layers:
            q, k = layer(q, k, tokens, k0, grid)
        if k.shape[0] != q.shape[0]:  # no layers: every set sees the input image
            k = k.repeat_interleave(g, dim=0)
        q = self.norm_final(q + self.final_attn(q + tokens, _per_set(k, k0, g), k))
        return q, k
