# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Class-presence classifier of AI-SAM (arXiv 2312.03119, the classification head, after the authors' code)."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Attention, ConvMLP, MLPBlock

__all__ = ["ClassPresenceClassifier"]


class ClassifierBlock(nn.Module):
    """Class tokens attend to the image; the image is refined by a conv-MLP and halved by average pooling."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, cross_downsample: int) -> None:
        super().__init__()
        self.attn = Attention(dim, num_heads, cross_downsample)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.image_mlp = ConvMLP(dim)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q (B, C, D)`` class tokens, ``k (B, D, h, w)`` image -> same, with the image grid halved."""
        keys = k.flatten(2).transpose(1, 2)
        q = self.norm1(q + self.attn(q, keys, keys))
        q = self.norm2(q + self.mlp(q))
        k = self.pool(self.image_mlp(k))
        k = self.norm3(k.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(k.shape)
        return q, k


class ClassPresenceClassifier(nn.Module):
    """
    Predicts which classes are present in an image from its (detached) SAM embedding: one learned token
    per class attends to the image through ``depth`` blocks whose key grid shrinks by 2 each time
    (64 -> 32 -> 16 -> 8 -> 4 at 1024 input), then a linear head gives one logit per class.

    Args:
        num_classes: ``C``, background included.
        dim: width ``D``.
        depth: number of blocks (4).
        num_heads: attention heads (8).
        mlp_dim: token MLP hidden width (512).
        cross_downsample: internal width divisor of the attention (2).
    """

    def __init__(
        self,
        num_classes: int,
        dim: int = 256,
        depth: int = 4,
        num_heads: int = 8,
        mlp_dim: int = 512,
        cross_downsample: int = 2,
    ) -> None:
        super().__init__()
        self.class_emb = nn.Parameter(torch.randn(num_classes, dim) * dim**-0.5)
        self.blocks = nn.ModuleList([ClassifierBlock(dim, num_heads, mlp_dim, cross_downsample) for _ in range(depth)])
        self.final_attn = Attention(dim, num_heads, cross_downsample)
        self.norm_final = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image (B, D, h, w)`` -> presence logits ``(B, C)``."""
        q = self.class_emb.unsqueeze(0).expand(image.shape[0], -1, -1)
        k = image
        for block in self.blocks:
            q, k = block(q, k)
        keys = k.flatten(2).transpose(1, 2)
        q = self.norm_final(q + self.final_attn(q, keys, keys))
        return self.head(q).squeeze(-1)
