# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

from .attention import Attention, multihead_attention, sam_attention
from .mlp import ConvMLP, GroupedMLP, LayerNorm2d, MLPBlock, layer_norm_2d

__all__ = [
    "Attention",
    "multihead_attention",
    "sam_attention",
    "ConvMLP",
    "GroupedMLP",
    "LayerNorm2d",
    "MLPBlock",
    "layer_norm_2d",
]
