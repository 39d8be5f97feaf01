# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
Prompt geometry and assembly for all classes at once: grid <-> pixel conversions, box masks on any grid,
and the sparse prompt set of every (image, class) pair (docs/architecture.md: the model contract).
"""

from __future__ import annotations

import torch

__all__ = [
    "class_order",
    "grid_index_to_pixel",
    "pixel_to_grid_index",
    "box_masks",
    "generated_point_tokens",
    "user_point_tokens",
]


def class_order(num_classes: int, device: torch.device | None = None) -> torch.Tensor:
    """
    ``(C, C)`` index: row ``c`` is ``[c, then every j != c in ascending order]``, the token order of the
    sparse prompt of class ``c``.
    """
    idx = torch.arange(num_classes, device=device)
    others = idx.unsqueeze(0).expand(num_classes, -1)
    others = others[others != idx.unsqueeze(1)].view(num_classes, num_classes - 1)
    return torch.cat([idx.unsqueeze(1), others], dim=1)


def grid_index_to_pixel(index: torch.Tensor, grid: tuple[int, int], image_size: int) -> torch.Tensor:
    """
    Flat grid indices ``(...)`` -> pixel ``(x, y)`` of the cell centres ``(..., 2)``:
    ``x = (col + 0.5) * S / w - 0.5``. SAM's point encoder maps this pixel exactly onto the dense
    positional encoding of the cell.
    """
    h, w = grid
    row, col = torch.div(index, w, rounding_mode="floor"), index % w
    x = (col.float() + 0.5) * image_size / w - 0.5
    y = (row.float() + 0.5) * image_size / h - 0.5
    return torch.stack([x, y], dim=-1)


def pixel_to_grid_index(points: torch.Tensor, grid: tuple[int, int], image_size: int) -> torch.Tensor:
    """Pixel ``(x, y)`` ``(..., 2)`` -> flat index ``(...)`` of the grid cell holding it."""
    h, w = grid
    col = torch.floor((points[..., 0] + 0.5) * w / image_size).long().clamp(0, w - 1)
    row = torch.floor((points[..., 1] + 0.5) * h / image_size).long().clamp(0, h - 1)
    return row * w + col


def box_masks(boxes: torch.Tensor, grid: tuple[int, int], image_size: int) -> torch.Tensor:
    """
    Rasterise per-class boxes on a ``grid`` laid over the ``S x S`` input.

    A cell is inside a box when the pixel that ``nearest-exact`` resizing samples for it
    (``floor((i + 0.5) * S / n)``) lies in the box, ends inclusive; the cell holding the box centre is
    always inside, so that a box smaller than a cell still selects something.

    Args:
        boxes: ``(B, C, 4)`` inclusive ``x1, y1, x2, y2`` in input pixels. All ``-1``: no box (every cell
            inside). ``x2 < x1`` or ``y2 < y1``: an empty box (no cell inside; the class is suppressed).
        grid: ``(h, w)``.
        image_size: ``S``.

    Returns:
        boolean ``(B, C, h, w)``.
    """
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (B, C, 4), got {tuple(boxes.shape)}.")
    h, w = grid
    dev = boxes.device
    ys = torch.floor((torch.arange(h, device=dev) + 0.5) * image_size / h)
    xs = torch.floor((torch.arange(w, device=dev) + 0.5) * image_size / w)
    x1, y1, x2, y2 = (boxes[..., i, None, None] for i in range(4))
    inside = (xs >= x1) & (xs <= x2) & (ys[:, None] >= y1) & (ys[:, None] <= y2)
    centre = torch.stack([(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2], dim=-1)
    flat = inside.flatten(2)
    flat.scatter_(2, pixel_to_grid_index(centre, grid, image_size).unsqueeze(-1), True)
    empty = (boxes[..., 2] < boxes[..., 0]) | (boxes[..., 3] < boxes[..., 1])
    no_box = (boxes == -1).all(dim=-1)
    flat = torch.where(empty.unsqueeze(-1), False, flat)
    flat = torch.where(no_box.unsqueeze(-1), True, flat)
    return flat.view(*boxes.shape[:2], h, w)


def generated_point_tokens(points: torch.Tensor, pos_embed: torch.Tensor, neg_embed: torch.Tensor) -> torch.Tensor:
    """
    Sparse prompt tokens from the generalized points of every class (AI-SAM, arXiv 2312.03119): for class
    ``c``, its own points plus the positive embedding, then the points of every other class (ascending) plus
    the negative embedding.

    Args:
        points: generalized points ``(B, C, Np, D)``.
        pos_embed: SAM's positive point-type embedding ``(1, D)``.
        neg_embed: SAM's negative point-type embedding ``(1, D)``.

    Returns:
        ``(B, C, C*Np, D)``.
    """
    b, c, n, d = points.shape
    ordered = points[:, class_order(c, points.device)]  # (B, C, C, Np, D)
    ordered = torch.cat([ordered[:, :, :1] + pos_embed, ordered[:, :, 1:] + neg_embed], dim=2)
    return ordered.reshape(b, c, c * n, d)


def user_point_tokens(
    prompt_encoder: torch.nn.Module, points: torch.Tensor, labels: torch.Tensor, image_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Sparse prompt tokens from user clicks, shared by all classes with class-specific roles:
    for the prompt of class ``c``, the clicks of ``c`` keep their label; positive clicks of another class
    are negatives for ``c``; negative clicks of another class and padding are ignored (masked out).

    Args:
        prompt_encoder: SAM's ``PromptEncoder`` (its random Fourier encoding and point-type embeddings).
        points: ``(B, C, K, 2)`` pixel ``(x, y)`` in the ``S x S`` input.
        labels: ``(B, C, K)``: 1 positive, 0 negative, -1 padding.
        image_size: ``S``.

    Returns:
        tokens ``(B, C, C*K, D)`` and a boolean validity mask ``(B, C, C*K)``.
    """
    if points.ndim != 4 or points.shape[-1] != 2 or labels.shape != points.shape[:-1]:
        raise ValueError(
            "points must be (B, C, K, 2) with point_labels (B, C, K), "
            f"got {tuple(points.shape)} and {tuple(labels.shape)}."
        )
    b, c, k, _ = points.shape
    # SAM's encoder indexes (N, P, 2) coordinates: fold the classes into the point axis and back.
    flat = points.float().reshape(b, c * k, 2) + 0.5
    coords = prompt_encoder.pe_layer.forward_with_coords(flat, (image_size, image_size)).view(b, c, k, -1)
    order = class_order(c, points.device)
    coords = coords[:, order]  # (B, Ct, Cs, K, D): target class, source class in prompt order
    src_labels = labels[:, order]
    own = (torch.arange(c, device=points.device) == 0)[None, None, :, None]  # first source = the class itself
    role = torch.where(own, src_labels, torch.where(src_labels == 1, 0, -1))
    pos = prompt_encoder.point_embeddings[1].weight
    neg = prompt_encoder.point_embeddings[0].weight
    role_emb = torch.where((role == 1).unsqueeze(-1), pos, torch.where((role == 0).unsqueeze(-1), neg, 0.0))
    tokens = (coords + role_emb).reshape(b, c, c * k, -1)
    return tokens, (role >= 0).reshape(b, c, c * k)
