# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Per-case, per-class Dice and HD95 with the empty-mask rules of the AI-SAM and TransUNet protocols."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.metrics import CumulativeIterationMetric, compute_hausdorff_distance

from aisam_monai.metrics.surface_distance import hd95

__all__ = ["EMPTY_MASK_RULES", "METRIC_NAMES", "compute_case_metrics", "PaperSegmentationMetric"]

EMPTY_MASK_RULES = ("aisam", "transunet")
"""``aisam``: an empty ground truth scores (1, 0) whatever the prediction; ``transunet``: it scores (1, 0) only when
the prediction is non-empty and (0, 0) when both are empty. An empty prediction of a present class scores (0, 0)."""

METRIC_NAMES = ("dice", "hd95", "hd95_mm")
"""Order of the last axis of :func:`compute_case_metrics` and :class:`PaperSegmentationMetric` outputs."""


def _hd95_mm(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> float:
    """MONAI's 95th-percentile Hausdorff distance (max of the two directed percentiles) with voxel spacing."""
    coords = np.argwhere(pred | gt)
    box = tuple(slice(max(a - 1, 0), b + 2) for a, b in zip(coords.min(0), coords.max(0)))
    p = torch.as_tensor(pred[box])[None, None]
    g = torch.as_tensor(gt[box])[None, None]
    return float(compute_hausdorff_distance(p, g, include_background=True, percentile=95, spacing=list(spacing)))


def compute_case_metrics(
    pred: np.ndarray | torch.Tensor,
    gt: np.ndarray | torch.Tensor,
    num_classes: int,
    rule: str = "aisam",
    spacing: Sequence[float] | None = None,
) -> np.ndarray:
    """
    Dice, HD95 (unit spacing, paper rule) and HD95 in mm of every foreground class of one case.

    Args:
        pred: predicted label map, any spatial shape (e.g. ``(H, W, D)``), integer values in ``[0, num_classes)``.
        gt: ground-truth label map of the same shape.
        num_classes: number of classes including background.
        rule: empty-mask rule, one of :data:`EMPTY_MASK_RULES`.
        spacing: voxel size per axis for the millimetre HD95 (MONAI's Hausdorff distance); ``None`` leaves that
            column NaN. The column is NaN as well whenever the prediction or the ground truth of a class is empty.

    Returns:
        float array ``(num_classes - 1, 3)``: columns :data:`METRIC_NAMES` for classes 1..C-1.
    """
    if rule not in EMPTY_MASK_RULES:
        raise ValueError(f"rule must be one of {EMPTY_MASK_RULES}, got {rule!r}.")
    pred = np.asarray(pred.detach().cpu() if isinstance(pred, torch.Tensor) else pred).astype(np.int64)
    gt = np.asarray(gt.detach().cpu() if isinstance(gt, torch.Tensor) else gt).astype(np.int64)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape, got {pred.shape} and {gt.shape}.")
    if spacing is not None and len(spacing) != pred.ndim:
        raise ValueError(f"spacing needs {pred.ndim} values, got {len(spacing)}.")
    if min(pred.min(initial=0), gt.min(initial=0)) < 0 or max(pred.max(initial=0), gt.max(initial=0)) >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got values in [{min(pred.min(), gt.min())}, "
            f"{max(pred.max(), gt.max())}]."
        )
    # confusion matrix in one pass (rows gt, columns pred) gives every class's overlap and sizes at once
    confusion = np.bincount((gt * num_classes + pred).ravel(), minlength=num_classes**2)
    confusion = confusion.reshape(num_classes, num_classes)
    gt_count, pred_count = confusion.sum(1)[1:], confusion.sum(0)[1:]
    overlap = np.diagonal(confusion)[1:]
    dice = 2.0 * overlap / np.maximum(gt_count + pred_count, 1)

    gt_present, pred_present = gt_count > 0, pred_count > 0
    both = gt_present & pred_present
    result = np.zeros((num_classes - 1, len(METRIC_NAMES)))
    result[:, 0] = np.where(both, dice, 0.0)
    result[:, 2] = np.nan
    if rule == "aisam":
        result[~gt_present, 0] = 1.0
    else:
        result[~gt_present & pred_present, 0] = 1.0
    # surface distances need one distance transform per class: the loop runs only over classes present in both
    for c in np.flatnonzero(both):
        pred_c, gt_c = pred == c + 1, gt == c + 1
        result[c, 1] = hd95(pred_c, gt_c)
        if spacing is not None:
            result[c, 2] = _hd95_mm(pred_c, gt_c, spacing)
    return result


def _spacing_of(y: torch.Tensor, index: int) -> list[float] | None:
    """Voxel size of item ``index`` of a batched MetaTensor, from its affine; ``None`` for a plain tensor."""
    if not isinstance(y, MetaTensor):
        return None
    affine = torch.as_tensor(y.affine)
    affine = affine[index] if affine.ndim == 3 else affine
    spatial = y.ndim - 2
    return torch.linalg.norm(affine[:spatial, :spatial].double(), dim=0).tolist()


class PaperSegmentationMetric(CumulativeIterationMetric):
    """
    Paper-protocol segmentation metric: per case and per foreground class Dice, HD95 and HD95 in mm.

    Each call scores a batch of whole cases and buffers a ``(B, C-1, 3)`` tensor (columns :data:`METRIC_NAMES`);
    :meth:`aggregate` returns the mean foreground Dice (mean over cases per class, then over classes), which is
    the key metric of the bundles. Works with MONAI's ``IgniteMetricHandler`` (gathered across ranks under DDP).

    Args:
        num_classes: number of classes including background.
        rule: empty-mask rule, one of :data:`EMPTY_MASK_RULES`.
        spacing_mm: compute HD95 in millimetres from the affine of ``y`` (a MetaTensor) with MONAI's
            ``compute_hausdorff_distance``; otherwise that column is NaN.

    Example::

        metric = PaperSegmentationMetric(num_classes=4, rule="transunet")
        metric(y_pred=pred_labels, y=labels)  # (B, 1, H, W, D) label maps
        mean_dice = metric.aggregate()
    """

    def __init__(self, num_classes: int, rule: str = "aisam", spacing_mm: bool = True) -> None:
        super().__init__()
        if rule not in EMPTY_MASK_RULES:
            raise ValueError(f"rule must be one of {EMPTY_MASK_RULES}, got {rule!r}.")
        self.num_classes = num_classes
        self.rule = rule
        self.spacing_mm = spacing_mm

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """
        Args:
            y_pred: predicted labels ``(B, 1, *spatial)``.
            y: ground-truth labels ``(B, 1, *spatial)``; a MetaTensor provides the spacing for HD95 in mm.
        """
        if y_pred.ndim < 3 or y_pred.shape[1] != 1 or y_pred.shape != y.shape:
            raise ValueError(
                f"y_pred and y must be label maps (B, 1, *spatial) of one shape, got {y_pred.shape}, {y.shape}."
            )
        rows = [
            compute_case_metrics(
                y_pred[b, 0], y[b, 0], self.num_classes, self.rule, _spacing_of(y, b) if self.spacing_mm else None
            )
            for b in range(y_pred.shape[0])
        ]
        return torch.as_tensor(np.stack(rows), dtype=torch.float64)

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """Mean foreground Dice over all buffered cases (mean per class over cases, then over classes)."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor) or data.numel() == 0:
            raise ValueError("PaperSegmentationMetric.aggregate() called before any case was scored.")
        return data[..., 0].mean(0).mean()
