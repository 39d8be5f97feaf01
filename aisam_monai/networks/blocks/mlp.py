# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Small feed-forward building blocks of the AI-Prompter and the class-presence classifier."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLPBlock", "GroupedMLP", "LayerNorm2d", "ConvMLP", "layer_norm_2d"]


class MLPBlock(nn.Module):
    """Token MLP ``Linear(E, M) -> act -> Linear(M, E)`` on ``(..., E)`` tensors."""

    def __init__(self, embedding_dim: int, mlp_dim: int, act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class GroupedMLP(nn.Module):
    """
    ``G`` independent MLPs (``num_layers`` linear layers of width ``dim`` with GELU between them)
    evaluated in one batched call: group ``g`` is applied to ``x[..., g, :]``.

    Args:
        groups: number of independent MLPs ``G``.
        dim: input, hidden and output width ``D``.
        num_layers: number of linear layers.
    """

    def __init__(self, groups: int, dim: int, num_layers: int = 3) -> None:
        super().__init__()
        self.weights = nn.ParameterList([nn.Parameter(torch.empty(groups, dim, dim)) for _ in range(num_layers)])
        self.biases = nn.ParameterList([nn.Parameter(torch.empty(groups, dim)) for _ in range(num_layers)])
        self.act = nn.GELU()
        bound = 1.0 / math.sqrt(dim)  # the default initialisation of nn.Linear, per group
        for w, b in zip(self.weights, self.biases):
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
            nn.init.uniform_(b, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., G, D)`` -> ``(..., G, D)``."""
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.einsum("...gi,goi->...go", x, w) + b
            if i < len(self.weights) - 1:
                x = self.act(x)
        return x


def layer_norm_2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """
    LayerNorm over the channel axis of ``x (B, C, H, W)`` (segment-anything's ``LayerNorm2d``), as one fused
    ``F.layer_norm`` on a channels-last view: the same statistics (biased variance, ``eps`` inside the square
    root) without the chain of elementwise passes, which in training costs a further pass each in backward.
    Returns ``(B, C, H, W)`` in channels-last memory layout.
    """
    # the parameter's shape, not the input's: it stays a constant when traced (TorchScript, ONNX export)
    return F.layer_norm(x.permute(0, 2, 3, 1), weight.shape, weight, bias, eps).permute(0, 3, 1, 2)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of ``(B, C, H, W)`` tensors (:func:`layer_norm_2d`)."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm_2d(x, self.weight, self.bias, self.eps)


class ConvMLP(nn.Module):
    """
    The image-side MLP of the AI-Prompter: ``x + Conv1x1(GELU(LayerNorm2d(Conv3x3(x))))`` on
    ``(B, D, h, w)`` feature maps (both convolutions with bias, ``D -> D``).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, padding=1)
        self.norm = LayerNorm2d(dim)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.norm(self.conv1(x))))
