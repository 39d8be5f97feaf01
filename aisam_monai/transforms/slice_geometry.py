# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

"""Geometry between a slice's own pixel grid and the square model grid: points, boxes and images.

The one home of this mapping: :class:`~aisam_monai.inferers.SliceVolumeInferer` (the bundles) and
:class:`~aisam_monai.interactive.AISAMPredictor` (the ``aisam`` tool) both use it; mask maps come back to the
slice grid with the label combination (:func:`aisam_monai.networks.resize_logits`). See docs/interactive.md,
"Coordinates".

A slice of ``H x W`` pixels is resized to the model's ``S x S`` input without keeping the aspect ratio
(bilinear, ``align_corners=False``). Pixel ``(x, y)`` (column, row) denotes the centre of that pixel, so
the exact correspondence is ``x' = (x + 0.5) * S / W - 0.5`` and ``y' = (y + 0.5) * S / H - 0.5``: a
scaling by ``S / W`` and ``S / H`` of the continuous frame whose origin is the image corner. Pixel centres
map onto pixel centres, and a generated point at the centre of an embedding cell maps onto the centre of
the same cell laid over the original slice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["box_mask", "box_to_model", "model_to_pixel", "pixel_to_model", "resize_to_model"]


def pixel_to_model(points: torch.Tensor, size: tuple[int, int], image_size: int) -> torch.Tensor:
    """Slice pixels ``(..., 2)`` as ``(x, y)`` on an ``H x W = size`` grid -> model pixels on ``S x S``."""
    h, w = size
    scale = points.new_tensor([image_size / w, image_size / h])
    return (points + 0.5) * scale - 0.5


def model_to_pixel(points: torch.Tensor, size: tuple[int, int], image_size: int) -> torch.Tensor:
    """Model pixels ``(..., 2)`` as ``(x, y)`` on ``S x S`` -> slice pixels on an ``H x W = size`` grid."""
    h, w = size
    scale = points.new_tensor([w / image_size, h / image_size])
    return (points + 0.5) * scale - 0.5


def box_to_model(boxes: torch.Tensor, size: tuple[int, int], image_size: int) -> torch.Tensor:
    """
    Inclusive slice-pixel boxes ``(..., 4)`` ``(x1, y1, x2, y2)`` -> the inclusive model-pixel boxes covering
    the same area (``[x1, x2 + 1)`` scaled, rounded outwards). The markers ``-1`` (no box) and empty boxes
    (``x2 < x1`` or ``y2 < y1``) keep their meaning.
    """
    h, w = size
    x1, y1, x2, y2 = boxes.float().unbind(-1)
    sx, sy = image_size / w, image_size / h
    out = torch.stack(
        [torch.floor(x1 * sx), torch.floor(y1 * sy), torch.ceil((x2 + 1) * sx) - 1, torch.ceil((y2 + 1) * sy) - 1], -1
    )
    empty = (x2 < x1) | (y2 < y1)
    out = torch.where(empty.unsqueeze(-1), out.new_tensor([0.0, 0.0, -1.0, -1.0]), out)
    return torch.where((boxes == -1).all(-1, keepdim=True), -1.0, out)


def box_mask(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """
    Rasterise inclusive pixel boxes on an ``H x W = size`` grid.

    Args:
        boxes: ``(B, C, 4)`` ``(x1, y1, x2, y2)``, ends inclusive; all ``-1``: no box (everything inside);
            ``x2 < x1`` or ``y2 < y1``: empty (nothing inside).

    Returns:
        boolean ``(B, C, H, W)``.
    """
    h, w = size
    xs = torch.arange(w, device=boxes.device, dtype=boxes.dtype)
    ys = torch.arange(h, device=boxes.device, dtype=boxes.dtype)
    x1, y1, x2, y2 = (boxes[..., i, None, None] for i in range(4))
    inside = (xs >= x1) & (xs <= x2) & (ys[:, None] >= y1) & (ys[:, None] <= y2)
    return inside | (boxes == -1).all(-1)[..., None, None]


def resize_to_model(slices: torch.Tensor, image_size: int) -> torch.Tensor:
    """Slices ``(B, C, H, W)`` -> ``(B, C, S, S)`` on the model grid (bilinear, ``align_corners=False``), float32."""
    return F.interpolate(slices.float(), size=(image_size, image_size), mode="bilinear", align_corners=False)
