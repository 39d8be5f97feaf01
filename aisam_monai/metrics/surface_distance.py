# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Binary Dice and the medpy-equivalent 95th-percentile Hausdorff distance on N-D masks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["binary_dice", "surface_distances", "hd95"]


def binary_dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice coefficient ``2|P∩G| / (|P|+|G|)`` of two binary masks of the same shape (0 when both are empty)."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    denominator = int(pred.sum()) + int(gt.sum())
    return 2.0 * int(np.logical_and(pred, gt).sum()) / denominator if denominator else 0.0


def _crop_to_union(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop both masks to the bounding box of their union plus one voxel (distances and borders are unchanged)."""
    coords = np.argwhere(np.logical_or(pred, gt))
    lo = np.maximum(coords.min(0) - 1, 0)
    hi = np.minimum(coords.max(0) + 2, pred.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    return pred[box], gt[box]


def surface_distances(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """
    Distances from every surface voxel of ``pred`` to the surface of ``gt`` and vice versa.

    Surfaces are the voxels removed by one binary erosion with the connectivity-1 structure (voxels on the
    array border count as surface), as in ``medpy.metric.binary``.

    Args:
        pred: binary mask, any number of dimensions.
        gt: binary mask of the same shape, both non-empty.
        spacing: voxel size per axis; ``None`` means unit spacing.

    Returns:
        (pred-to-gt distances, gt-to-pred distances), 1-D float arrays.
    """
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape, got {pred.shape} and {gt.shape}.")
    if not pred.any() or not gt.any():
        raise ValueError("surface distances need two non-empty masks.")
    pred, gt = _crop_to_union(pred, gt)
    structure = ndimage.generate_binary_structure(pred.ndim, 1)
    pred_border = pred ^ ndimage.binary_erosion(pred, structure=structure, iterations=1)
    gt_border = gt ^ ndimage.binary_erosion(gt, structure=structure, iterations=1)
    to_gt = ndimage.distance_transform_edt(~gt_border, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~pred_border, sampling=spacing)
    return to_gt[pred_border], to_pred[gt_border]


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """95th percentile of the pooled symmetric surface distances of two non-empty masks (``medpy.metric.hd95``)."""
    forward, backward = surface_distances(pred, gt, spacing)
    return float(np.percentile(np.hstack((forward, backward)), 95))
