# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Prompts derived from ground-truth label maps for a batch of slices, all classes at once.

The interactive rows of AI-SAM's Tables 1 and 2 (arXiv 2312.03119).
"""

from __future__ import annotations

import torch

__all__ = ["class_presence", "label_boxes", "random_label_points"]


def _group_index(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Flat ``(B * H * W)`` index ``b * C + label`` of the (slice, class) group of every pixel."""
    b = labels.shape[0]
    offsets = torch.arange(b, device=labels.device).view(b, 1, 1) * num_classes
    return (labels.reshape(b, *labels.shape[-2:]).long() + offsets).reshape(-1)


def class_presence(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """
    Multi-hot presence of every class (background included) in each slice.

    Args:
        labels: ``(B, 1, H, W)`` integer label maps.
        num_classes: ``C``.

    Returns:
        boolean ``(B, C)``.
    """
    counts = torch.bincount(_group_index(labels, num_classes), minlength=labels.shape[0] * num_classes)
    return counts.view(labels.shape[0], num_classes) > 0


def label_boxes(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """
    Tightest inclusive box ``(x1, y1, x2, y2)`` of every class in each slice (``masks_to_boxes``).

    Args:
        labels: ``(B, 1, H, W)`` integer label maps.
        num_classes: ``C``.

    Returns:
        float ``(B, C, 4)`` in pixels; an absent class gets the empty box ``(0, 0, -1, -1)``, which suppresses it.
    """
    b, h, w = labels.shape[0], labels.shape[-2], labels.shape[-1]
    group = _group_index(labels, num_classes)
    rows = torch.arange(h, device=labels.device).view(1, h, 1).expand(b, h, w).reshape(-1)
    cols = torch.arange(w, device=labels.device).view(1, 1, w).expand(b, h, w).reshape(-1)
    n = b * num_classes

    def reduce(values: torch.Tensor, how: str, init: int) -> torch.Tensor:
        out = torch.full((n,), init, dtype=values.dtype, device=values.device)
        return out.scatter_reduce(0, group, values, how, include_self=True)

    boxes = torch.stack(
        [reduce(cols, "amin", w), reduce(rows, "amin", h), reduce(cols, "amax", -1), reduce(rows, "amax", -1)], -1
    ).view(b, num_classes, 4)
    absent = ~class_presence(labels, num_classes)
    empty = torch.tensor([0, 0, -1, -1], dtype=boxes.dtype, device=boxes.device)
    return torch.where(absent.unsqueeze(-1), empty, boxes).float()


def random_label_points(
    labels: torch.Tensor, num_classes: int, num_points: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    ``num_points`` pixels per class and slice drawn uniformly (with replacement) from the class's mask.

    Each draw gives every pixel an independent random key and keeps, per (slice, class), the pixel with the
    largest key: one ``scatter_reduce`` per draw for all slices and classes.

    Args:
        labels: ``(B, 1, H, W)`` integer label maps.
        num_classes: ``C``.
        num_points: draws per class ``K``.
        generator: optional random generator (on the labels' device) for reproducible draws.

    Returns:
        points ``(B, C, K, 2)`` pixel ``(x, y)`` and point labels ``(B, C, K)``: 1 for a present class,
        -1 (padding) for an absent one.
    """
    b, h, w = labels.shape[0], labels.shape[-2], labels.shape[-1]
    if h * w >= 2**24:
        raise ValueError(f"random_label_points supports slices of fewer than 2**24 pixels, got {h}x{w}.")
    group = _group_index(labels, num_classes)
    pixel = torch.arange(h * w, device=labels.device).repeat(b)
    draws = []
    for _ in range(num_points):  # a handful of draws; each is one batched reduction over all slices and classes
        keys = torch.randint(0, 2**30, (group.numel(),), generator=generator, device=labels.device)
        packed = (keys << 24) | pixel  # key in the high bits, pixel index (< 2**24) in the low bits
        best = torch.full((b * num_classes,), -1, dtype=packed.dtype, device=labels.device)
        best = best.scatter_reduce(0, group, packed, "amax", include_self=True)
        draws.append(best & (2**24 - 1))
    index = torch.stack(draws, -1).view(b, num_classes, num_points)
    points = torch.stack([index % w, torch.div(index, w, rounding_mode="floor")], -1).float()
    present = class_presence(labels, num_classes)
    point_labels = torch.where(present, 1, -1).unsqueeze(-1).expand(b, num_classes, num_points)
    return torch.where(present[..., None, None], points, 0.0), point_labels.contiguous()
