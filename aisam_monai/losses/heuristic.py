# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""AI-SAM's prompt heuristic loss: point correctness + sharpness + diversity (arXiv 2312.03119)."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

from .diversity import PromptDiversityLoss
from .point import PointCorrectnessLoss, PointSharpnessLoss

__all__ = ["PromptHeuristicLoss"]


class PromptHeuristicLoss(_Loss):
    """
    ``correctness_weight * L_pc + sharpness_weight * L_ps + diversity_weight * (within_weight * L_in + across_weight
    * L_out)``, with the reference constants as defaults. ``L_pc`` and ``L_ps`` average over the point slots of the
    classes present in the target; the diversity terms over all anchors. ``diversity_weight=0`` and
    ``sharpness_weight=0`` give the ablations of the paper's Table 3 (arXiv 2312.03119): "w/o diversity" and
    "w/o diversity & sharpness".

    Args:
        gamma: smoothing of the point losses (0.1).
        correctness_weight: weight of point correctness (2.0).
        sharpness_weight: weight of point sharpness (1.0).
        within_weight: weight of within-class diversity (0.2).
        across_weight: weight of across-class diversity (0.5).
        temperature: diversity InfoNCE temperature (1/7).
        diversity_weight: weight of the whole diversity term (1.0; 0 removes it from the total).
    """

    def __init__(
        self,
        gamma: float = 0.1,
        correctness_weight: float = 2.0,
        sharpness_weight: float = 1.0,
        within_weight: float = 0.2,
        across_weight: float = 0.5,
        temperature: float = 1 / 7,
        diversity_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.correctness = PointCorrectnessLoss(gamma)
        self.sharpness = PointSharpnessLoss(gamma)
        self.diversity = PromptDiversityLoss(temperature, within_weight, across_weight)
        self.correctness_weight = correctness_weight
        self.sharpness_weight = sharpness_weight
        self.diversity_weight = diversity_weight

    def terms(
        self, point_weights: torch.Tensor, point_features: torch.Tensor, target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Unweighted ``point_correctness`` and ``point_sharpness``; ``diversity`` with its within/across weights."""
        return {
            "point_correctness": self.correctness(point_weights, target),
            "point_sharpness": self.sharpness(point_weights, target),
            "diversity": self.diversity(point_features),
        }

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """The weighted total of :meth:`terms`."""
        return (
            self.correctness_weight * terms["point_correctness"]
            + self.sharpness_weight * terms["point_sharpness"]
            + self.diversity_weight * terms["diversity"]
        )

    def forward(self, point_weights: torch.Tensor, point_features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            point_weights: soft selection weights ``(B, C, N, h, w)``.
            point_features: ``(B, C, N, D)``.
            target: one-hot ``(B, C, H, W)`` or labels ``(B, 1, H, W)``.
        """
        return self.combine(self.terms(point_weights, point_features, target))
