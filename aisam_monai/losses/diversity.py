# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Prompt diversity loss of AI-SAM (InfoNCE on point features; arXiv 2312.03119, the prompt diversity terms)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

__all__ = ["PromptDiversityLoss", "info_nce"]


def info_nce(features: torch.Tensor, temperature: float) -> torch.Tensor:
    """
    InfoNCE of every anchor against the other members of its set, the anchor itself being the positive:
    ``-log(exp(s_aa / t) / sum_n exp(s_an / t))`` with cosine similarities ``s``.

    Args:
        features: ``(..., M, D)``: sets of ``M`` members.
        temperature: ``t``.

    Returns:
        ``(..., M)`` per-anchor losses.
    """
    f = F.normalize(features.float(), dim=-1)
    logits = f @ f.transpose(-1, -2) / temperature
    return -torch.diagonal(logits.log_softmax(-1), dim1=-2, dim2=-1)


class PromptDiversityLoss(_Loss):
    """
    Spreads the generated points apart: InfoNCE over the ``N`` points of one class (``within_class``) and
    over the ``C`` classes at one point slot (``across_class``), combined as
    ``within_weight * within + across_weight * across``. All classes take part (no masking).

    Args:
        temperature: InfoNCE temperature (1/7 in the reference).
        within_weight: weight of the within-class term (0.2).
        across_weight: weight of the across-class term (0.5).
        reduction: ``"mean"`` over anchors, ``"sum"``, or ``"none"`` giving ``(B, C, N)`` per-anchor
            weighted losses (the across-class anchor of class ``c`` at slot ``n`` sits at ``[:, c, n]``).
    """

    def __init__(
        self,
        temperature: float = 1 / 7,
        within_weight: float = 0.2,
        across_weight: float = 0.5,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        self.temperature = temperature
        self.within_weight = within_weight
        self.across_weight = across_weight

    def within_class(self, point_features: torch.Tensor) -> torch.Tensor:
        """Per-anchor within-class InfoNCE ``(B, C, N)``."""
        return info_nce(point_features, self.temperature)

    def across_class(self, point_features: torch.Tensor) -> torch.Tensor:
        """Per-anchor across-class InfoNCE ``(B, C, N)``."""
        return info_nce(point_features.transpose(1, 2), self.temperature).transpose(1, 2)

    def forward(self, point_features: torch.Tensor) -> torch.Tensor:
        """
        Args:
            point_features: ``(B, C, N, D)`` point features ``W (PE + X)``.

        Raises:
            ValueError: when ``point_features`` is not 4-D.
        """
        if point_features.ndim != 4:
            raise ValueError(f"point_features must be (B, C, N, D), got {tuple(point_features.shape)}.")
        loss = self.within_weight * self.within_class(point_features) + self.across_weight * self.across_class(
            point_features
        )
        if self.reduction == LossReduction.MEAN.value:
            return loss.mean()
        if self.reduction == LossReduction.SUM.value:
            return loss.sum()
        return loss
