# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""The modified two-way transformer of the AI-Prompter (spec §1.4.2)."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Attention, ConvMLP, MLPBlock

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
        Args:
            q: tokens ``(B, N, D)``; ``q_pe`` their positional term, same shape.
            k: image tokens ``(B, h*w, D)``; ``k_pe`` their positional term, same shape.
            grid: ``(h, w)`` of the image tokens.
        """
        if self.first:
            q = self.self_attn(q, q, q)
        else:
            qp = q + q_pe
            q = q + self.self_attn(qp, qp, q)
        q = self.norm1(q)
        q = self.norm2(q + self.token_to_image(q + q_pe, k + k_pe, k))
        q = self.norm3(q + self.mlp(q))
        b, _, d = k.shape
        k_map = k.transpose(1, 2).reshape(b, d, grid[0], grid[1])
        k = self.norm4(self.image_mlp(k_map).flatten(2).transpose(1, 2))
        k = self.norm5(k + self.image_to_token(k + k_pe, q + q_pe, q))
        return q, k


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

    def __init__(self, depth: int = 4, dim: int = 256, num_heads: int = 8, mlp_dim: int = 512, cross_downsample: int = 2):
        super().__init__()
        self.layers = nn.ModuleList(
            [PrompterBlock(dim, num_heads, mlp_dim, cross_downsample, first=(i == 0)) for i in range(depth)]
        )
        self.final_attn = Attention(dim, num_heads, cross_downsample)
        self.norm_final = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            tokens: initial tokens ``T0`` ``(B, N, D)`` (point tokens then class tokens).
            image: image embedding ``(B, D, h, w)``.

        Returns:
            refined tokens ``(B, N, D)`` and refined image tokens ``F`` ``(B, h*w, D)``.
        """
        grid = (image.shape[-2], image.shape[-1])
        k0 = image.flatten(2).transpose(1, 2)
        q, k = tokens, k0
        for layer in self.layers:
            q, k = layer(q, k, tokens, k0, grid)
        q = self.norm_final(q + self.final_attn(q + tokens, k + k0, k))
        return q, k
