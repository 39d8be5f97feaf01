# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Point correctness and point sharpness losses of AI-SAM's prompt heuristic (arXiv 2312.03119)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

__all__ = ["PointCorrectnessLoss", "PointSharpnessLoss", "class_target", "point_correctness", "point_sharpness"]


def class_target(target: torch.Tensor, num_classes: int, size: tuple[int, int]) -> torch.Tensor:
    """
    Per-class target on the selection grid.

    Args:
        target: one-hot ``(B, C, H, W)`` or label map ``(B, 1, H, W)`` with values in ``[0, C)``.
        num_classes: ``C``.
        size: ``(h, w)`` of the selection grid.

    Returns:
        ``(B, C, h, w)`` float, resized bilinearly with ``align_corners=True`` (so soft at borders;
        the identity when already ``(h, w)``).
    """
    if target.ndim != 4 or target.shape[1] not in (1, num_classes):
        raise ValueError(
            f"target must be (B, {num_classes}, H, W) one-hot or (B, 1, H, W) labels, got {tuple(target.shape)}."
        )
    if target.shape[1] == 1 and num_classes > 1:
        labels = target[:, 0].long()
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"label values must lie in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]."
            )
        target = F.one_hot(labels, num_classes).permute(0, 3, 1, 2)
    target = target.float()
    if tuple(target.shape[-2:]) != tuple(size):
        target = F.interpolate(target, size=size, mode="bilinear", align_corners=True)
    return target


def _check_weights(point_weights: torch.Tensor, target: torch.Tensor) -> None:
    if point_weights.ndim != 5:
        raise ValueError(f"point_weights must be (B, C, N, h, w), got {tuple(point_weights.shape)}.")
    if target.shape[0] != point_weights.shape[0]:
        raise ValueError(
            f"batch sizes differ: point_weights {tuple(point_weights.shape)}, target {tuple(target.shape)}."
        )


def point_correctness(weights: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """``1 - (sum W*T + gamma) / (sum W + gamma)`` per ``(b, c, n)``; ``weights (B,C,N,h,w)``, ``target (B,C,h,w)``."""
    t = target.unsqueeze(2)
    return 1 - ((weights * t).sum((-2, -1)) + gamma) / (weights.sum((-2, -1)) + gamma)


def point_sharpness(weights: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """``1 - (max W*T + gamma) / (stopgrad(sum W*T) + gamma)`` per ``(b, c, n)``."""
    masked = weights * target.unsqueeze(2)
    return 1 - (masked.amax((-2, -1)) + gamma) / (masked.sum((-2, -1)).detach() + gamma)


def _reduce_present(values: torch.Tensor, present: torch.Tensor, reduction: str) -> torch.Tensor:
    """Zero the absent ``(b, c)`` rows of ``values (B, C, N)`` and reduce over the present ones."""
    values = values * present.unsqueeze(-1)
    if reduction == LossReduction.NONE.value:
        return values
    if reduction == LossReduction.SUM.value:
        return values.sum()
    count = present.sum() * values.shape[-1]
    return values.sum() / count.clamp(min=1)


class _PresentClassPointLoss(_Loss):
    """Base of the per-point losses: a term per ``(b, c, n)``, reduced over the classes present in the target."""

    def __init__(self, gamma: float = 0.1, reduction: LossReduction | str = LossReduction.MEAN) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        self.gamma = gamma

    @staticmethod
    def term(weights: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, point_weights: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            point_weights: ``(B, C, N, h, w)``, each ``(h, w)`` map summing to 1 (soft ``W``).
            target: one-hot ``(B, C, H, W)`` or label map ``(B, 1, H, W)``; resized to ``(h, w)``
                bilinearly with ``align_corners=True``.

        Raises:
            ValueError: on shapes that do not fit or labels outside ``[0, C)``.
        """
        _check_weights(point_weights, target)
        t = class_target(target, point_weights.shape[1], point_weights.shape[-2:])
        return _reduce_present(self.term(point_weights, t, self.gamma), t.sum((-2, -1)) > 0, self.reduction)


class PointCorrectnessLoss(_PresentClassPointLoss):
    """
    Keeps each generated point inside its class (AI-SAM point correctness): for every point slot ``n``
    of a class ``c`` present in the target, ``1 - (sum(W*T) + gamma) / (sum(W) + gamma)`` where ``W`` is
    the point's selection weights and ``T`` the class indicator on the weight grid.

    Args:
        gamma: smoothing constant (0.1 in the reference).
        reduction: ``"mean"`` averages over the ``(b, c, n)`` of present classes (0 when none is present),
            ``"sum"`` sums them, ``"none"`` returns ``(B, C, N)`` with absent classes zeroed.

    Example::

        >>> loss = PointCorrectnessLoss()
        >>> w = torch.softmax(torch.randn(2, 4, 4, 16 * 16), -1).view(2, 4, 4, 16, 16)
        >>> loss(w, torch.randint(0, 4, (2, 1, 64, 64)))
    """

    term = staticmethod(point_correctness)


class PointSharpnessLoss(_PresentClassPointLoss):
    """
    Pushes each point's selection weights towards one-hot inside its class (AI-SAM point sharpness):
    ``1 - (max(W*T) + gamma) / (stopgrad(sum(W*T)) + gamma)`` per point slot of a present class.
    Arguments, shapes and reductions as in :class:`PointCorrectnessLoss`.
    """

    term = staticmethod(point_sharpness)
